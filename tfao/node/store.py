"""The node's durable log: processes, scheduled messages with their assignments, and results.

SQLite in WAL mode. A message is acknowledged only after the transaction that schedules it has
committed, so an acknowledged message survives a crash; results are derived and can be recomputed.

Beside the database, ``node.sqlite-head`` records how far the log had got (the last message's row)
after every commit that scheduled messages. A store refuses to open (``DamagedLog``) when the
database is missing, emptied, unreadable or shorter than that record, which is what a lost,
truncated or overwritten ``-wal`` file or an overwritten page looks like: starting anyway would lose
acknowledged messages and issue their nonces again. It checks read-only, so the damaged files stay
as they were found. The record is written without an fsync: a crash of the node keeps it (the page
cache does), and after a power loss it can only lag the database, never lead it. ``close()``
checkpoints the WAL into the database, so a stopped node's home is whole without its ``-wal``.

Checking that the database is sound (SQLite's ``quick_check``) reads all of it, which grows with the
log, so ``close()`` also stamps the database's modification time (one second in the past, so no later
write can give it the same time) and records the stamp and the size in the head. An open that finds
both unchanged and no ``-wal`` knows nothing wrote the database since the clean stop and skips the
check; after a crash, or any write since, it runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    module TEXT NOT NULL,
    name TEXT,
    created INTEGER NOT NULL            -- insertion order, for listing
);
CREATE TABLE IF NOT EXISTS messages (
    process_id TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    id TEXT NOT NULL,                   -- the message item's id (the process id for nonce 0)
    assignment_id TEXT NOT NULL,
    item BLOB NOT NULL,                 -- the signed ANS-104 message
    assignment BLOB NOT NULL,           -- the signed ANS-104 assignment
    timestamp INTEGER NOT NULL,
    block_height INTEGER NOT NULL,
    hash_chain TEXT NOT NULL,
    PRIMARY KEY (process_id, nonce)
);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (id, process_id);
CREATE TABLE IF NOT EXISTS results (
    process_id TEXT NOT NULL,
    nonce INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    error INTEGER NOT NULL,
    result TEXT NOT NULL,               -- JSON, as the compute unit returns it
    PRIMARY KEY (process_id, nonce)
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
HEAD_BYTES = 21  # the head's first line: the last message row, right-aligned, and a newline
LAST_MESSAGE = "SELECT COALESCE(MAX(rowid), 0) FROM messages"  # rows are only added: this grows with the log


class DamagedLog(RuntimeError):
    """The log on disk is not a sound database, or holds less than the node acknowledged."""


def head_record(last: int, stamp: tuple[int, int] | None = None) -> bytes:
    """The head's text: the last message row (fixed width), then, after a clean stop, the database's
    (size, modification time in ns)."""
    return f"{last:>{HEAD_BYTES - 1}}\n".encode() + (b"" if stamp is None else f"{stamp[0]} {stamp[1]}\n".encode())


def read_head_record(path: Path) -> tuple[int | None, tuple[int, int] | None]:
    """(the last message row the node recorded, the clean stop's stamp); (None, None) with no head."""
    try:
        lines = Path(path).read_text().split("\n")
    except FileNotFoundError:
        return None, None
    if not lines[0].strip().isdigit():
        raise DamagedLog(f"{Path(path).name} is not a row number")
    fields = lines[1].split() if len(lines) > 1 else []
    stamp = (int(fields[0]), int(fields[1])) if len(fields) == 2 and all(f.isdigit() for f in fields) else None
    return int(lines[0]), stamp


def read_head(path: Path) -> int | None:
    """The last message row the node recorded, None if it never recorded one."""
    return read_head_record(path)[0]


def untouched_since_clean_stop(path: Path, stamp: tuple[int, int] | None) -> bool:
    wal = path.with_name(path.name + "-wal")
    if stamp is None or (wal.exists() and wal.stat().st_size):
        return False
    status = path.stat()
    return (status.st_size, status.st_mtime_ns) == stamp


def last_message_on_disk(path: Path, *, check: bool = True) -> int:
    """The last message row a database holds, read without changing its files; DamagedLog if unsound
    (``check=False``: trusted to be as a clean stop left it, so not read through)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise DamagedLog(f"SQLite cannot open {path.name} ({exc})") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")] if check else ["ok"]
        if problems != ["ok"]:
            raise DamagedLog(f"SQLite finds {path.name} damaged: {'; '.join(problems[:3])}")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone() is None:
            return 0
        return conn.execute(LAST_MESSAGE).fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise DamagedLog(f"SQLite cannot read {path.name} ({exc})") from None
    finally:
        conn.close()


def check_log_on_disk(path: Path, head_path: Path) -> None:
    """Refuse a log that holds less than was acknowledged (see the module docstring)."""
    recorded, stamp = read_head_record(head_path)
    if not path.exists() or path.stat().st_size == 0:
        if recorded:
            raise DamagedLog(f"{path.name} is missing or empty, but the node had acknowledged {recorded} messages")
        return
    last = last_message_on_disk(path, check=not untouched_since_clean_stop(path, stamp))
    if recorded is not None and last < recorded:
        raise DamagedLog(f"{path.name} holds {last} messages, but the node had acknowledged {recorded}: its "
                         f"write-ahead log ({path.name}-wal) is missing, truncated or damaged")


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced."""


@dataclass(frozen=True)
class ScheduledMessage:
    process_id: str
    nonce: int
    id: str
    assignment_id: str
    item: bytes
    assignment: bytes
    timestamp: int
    block_height: int
    hash_chain: str


@dataclass(frozen=True)
class ResultRow:
    process_id: str
    nonce: int
    message_id: str
    timestamp: int
    error: bool
    result: dict


class NodeStore:
    """Thread-safe access to the node's SQLite log (one connection per thread)."""

    def __init__(self, path: Path, *, durable: bool = True):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + "-head")
        self.durable = durable
        self.local = threading.local()
        # every live thread's, closed together by close(); a thread's goes when the thread ends
        self.connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()
        self.write_lock = threading.RLock()
        check_log_on_disk(self.path, self.head_path)
        self._conn().executescript(SCHEMA)
        self.head: int | None = os.open(self.head_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.scheduled_processes: set[str] = set()  # the processes the open transaction added messages for
        self._write_head()
        os.ftruncate(self.head, HEAD_BYTES)  # a running node's head holds no clean-stop stamp

    def _sync_wal(self) -> None:
        """What synchronous=FULL does at a commit: the write-ahead log's frames so far, on disk."""
        wal = os.open(self.path.with_name(self.path.name + "-wal"), os.O_RDONLY)
        try:
            os.fsync(wal)
        finally:
            os.close(wal)

    def _write_head(self) -> None:
        last = self._conn().execute(LAST_MESSAGE).fetchone()[0]
        os.pwrite(self.head, head_record(last), 0)  # fixed width: one write replaces it

    def close(self) -> None:
        """Checkpoint the WAL into the database (a stopped home is whole without it) and close."""
        with self.write_lock:
            if self.head is None:  # closed already
                return
            self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
            last = self._conn().execute(LAST_MESSAGE).fetchone()[0]
            for conn in list(self.connections):
                conn.close()
            self.connections.clear()
            status = self.path.stat()
            os.utime(self.path, ns=(status.st_atime_ns, time.time_ns() - 10**9))  # see the module docstring
            status = self.path.stat()
            os.pwrite(self.head, head_record(last, (status.st_size, status.st_mtime_ns)), 0)
            os.fsync(self.head)
            os.close(self.head)
            self.head = None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None or self.local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False,
                                   factory=_Connection)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'OFF'}")
            self.local.conn, self.local.pid = conn, os.getpid()
            self.connections.add(conn)
        return conn

    @contextmanager
    def transaction(self, derived: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction at a time; committed (and on disk) when the block exits.

        ``derived``: the block writes only what the log recomputes to the same bits (a successful result),
        so unless it also scheduled messages its commit does not wait for the disk: a crash of the node
        loses nothing (the write is in the page cache), a power loss at most results that the node
        evaluates again, and the next commit that waits puts them on disk too (the WAL is written in order)."""
        lazy = derived and self.durable
        with self.write_lock:
            conn = self._conn()
            if lazy:  # SQLite takes it outside a transaction only
                conn.execute("PRAGMA synchronous=NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE")
                self.scheduled_processes = set()
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                if lazy and self.scheduled_processes:  # it scheduled messages after all: on disk now
                    self._sync_wal()
            finally:
                if lazy:
                    conn.execute("PRAGMA synchronous=FULL")
            if self.scheduled_processes:
                self._write_head()

    # ---- settings
    def setting(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def settings_named(self, prefix: str, value: str) -> list[str]:
        """The rest of every key that starts with ``prefix`` and is set to ``value``."""
        rows = self._conn().execute("SELECT key FROM settings WHERE substr(key, 1, ?) = ? AND value = ? ORDER BY key",
                                    (len(prefix), prefix, value)).fetchall()
        return [row[0][len(prefix):] for row in rows]

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    # ---- processes
    def add_process(self, conn: sqlite3.Connection, pid: str, owner: str, module: str, name: str | None) -> None:
        created = conn.execute("SELECT COUNT(*) FROM processes").fetchone()[0]
        conn.execute(
            "INSERT INTO processes (id, owner, module, name, created) VALUES (?, ?, ?, ?, ?)",
            (pid, owner, module, name, created),
        )

    def processes(self) -> list[dict]:
        rows = self._conn().execute("SELECT id, owner, module, name FROM processes ORDER BY created").fetchall()
        return [dict(zip(("id", "owner", "module", "name"), row)) for row in rows]

    def process_count(self, owner: str | None = None) -> int:
        """How many processes the log holds (those of ``owner`` if given)."""
        if owner is None:
            return self._conn().execute("SELECT COUNT(*) FROM processes").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM processes WHERE owner = ?", (owner,)).fetchone()[0]

    def process_owner(self, pid: str) -> str | None:
        row = self._conn().execute("SELECT owner FROM processes WHERE id = ?", (pid,)).fetchone()
        return row[0] if row else None

    def has_process(self, pid: str) -> bool:
        return self._conn().execute("SELECT 1 FROM processes WHERE id = ?", (pid,)).fetchone() is not None

    # ---- messages
    def last_assignment(self, conn: sqlite3.Connection, pid: str) -> tuple[int, str, str, int, int] | None:
        """(nonce, assignment id, hash chain, timestamp, block height) of the newest assignment of a process."""
        return conn.execute(
            "SELECT nonce, assignment_id, hash_chain, timestamp, block_height FROM messages WHERE process_id = ? "
            "ORDER BY nonce DESC LIMIT 1",
            (pid,),
        ).fetchone()

    def add_message(self, conn: sqlite3.Connection, m: ScheduledMessage) -> None:
        self.scheduled_processes.add(m.process_id)
        conn.execute(
            "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (m.process_id, m.nonce, m.id, m.assignment_id, m.item, m.assignment, m.timestamp,
             m.block_height, m.hash_chain),
        )

    def message(self, pid: str, nonce: int) -> ScheduledMessage | None:
        row = self._conn().execute(
            "SELECT * FROM messages WHERE process_id = ? AND nonce = ?", (pid, nonce)
        ).fetchone()
        return ScheduledMessage(*row) if row else None

    def find_message(self, message_id: str, pid: str | None = None) -> ScheduledMessage | None:
        """The message scheduled with this id (on ``pid``, where a message is scheduled once; else its
        first scheduling). Both read the id index: an ORDER BY nonce beside the process id would make
        SQLite walk the process's whole log instead."""
        if pid is not None:
            row = self._conn().execute("SELECT * FROM messages WHERE id = ? AND process_id = ?",
                                       (message_id, pid)).fetchone()
        else:
            row = self._conn().execute("SELECT * FROM messages WHERE id = ? ORDER BY nonce LIMIT 1",
                                       (message_id,)).fetchone()
        return ScheduledMessage(*row) if row else None

    def messages(self, pid: str, *, from_nonce: int = 0, to_nonce: int | None = None, limit: int = 100):
        rows = self._conn().execute(
            "SELECT * FROM messages WHERE process_id = ? AND nonce >= ? AND nonce <= ? ORDER BY nonce LIMIT ?",
            (pid, from_nonce, to_nonce if to_nonce is not None else 2**62, limit),
        ).fetchall()
        return [ScheduledMessage(*row) for row in rows]

    def items_newest_first(self) -> Iterator[bytes]:
        """The signed items of every scheduled message (processes too), the last scheduled first."""
        for (item,) in self._conn().execute("SELECT item FROM messages ORDER BY rowid DESC"):
            yield item

    def message_count(self, pid: str) -> int:
        """How many messages are scheduled (nonces are dense from 0, and MAX reads one index entry)."""
        return self._conn().execute("SELECT COALESCE(MAX(nonce), -1) + 1 FROM messages WHERE process_id = ?",
                                    (pid,)).fetchone()[0]

    # ---- results
    def add_result(self, conn: sqlite3.Connection, m: ScheduledMessage, result: dict) -> None:
        conn.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?)",
            (m.process_id, m.nonce, m.id, m.timestamp, int("Error" in result), json.dumps(result)),
        )

    def result(self, pid: str, nonce: int) -> ResultRow | None:
        row = self._conn().execute(
            "SELECT * FROM results WHERE process_id = ? AND nonce = ?", (pid, nonce)
        ).fetchone()
        return _result_row(row) if row else None

    def evaluated_upto(self, pid: str) -> int:
        """The highest nonce with a result, or -1."""
        row = self._conn().execute("SELECT MAX(nonce) FROM results WHERE process_id = ?", (pid,)).fetchone()
        return -1 if row[0] is None else row[0]

    def results_between(self, pid: str, low: int, high: int, *, descending: bool, limit: int):
        """Results with low < nonce <= high, ordered by nonce."""
        rows = self._conn().execute(
            "SELECT * FROM results WHERE process_id = ? AND nonce > ? AND nonce <= ? "
            f"ORDER BY nonce {'DESC' if descending else 'ASC'} LIMIT ?",
            (pid, low, high, limit),
        ).fetchall()
        return [_result_row(row) for row in rows]

    def nonce_at_timestamp(self, pid: str, timestamp: int) -> int:
        """The last nonce at or before ``timestamp`` (a bare-timestamp results bound)."""
        row = self._conn().execute(
            "SELECT MAX(nonce) FROM messages WHERE process_id = ? AND timestamp <= ?", (pid, timestamp)
        ).fetchone()
        return -1 if row[0] is None else row[0]

    def successful_messages(self, pid: str, *, after: int = -1, limit: int = 2**62) -> list[ScheduledMessage]:
        """The messages whose results have no Error, from nonce ``after + 1``, in order."""
        rows = self._conn().execute(
            "SELECT m.* FROM messages m JOIN results r ON r.process_id = m.process_id AND r.nonce = m.nonce "
            "WHERE m.process_id = ? AND m.nonce > ? AND r.error = 0 ORDER BY m.nonce LIMIT ?",
            (pid, after, limit),
        ).fetchall()
        return [ScheduledMessage(*row) for row in rows]


def _result_row(row) -> ResultRow:
    pid, nonce, mid, timestamp, error, result = row
    return ResultRow(pid, nonce, mid, timestamp, bool(error), json.loads(result))
