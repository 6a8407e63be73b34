"""A node home's integrity check and backup, usable while its node runs (both only read the home).

``check_home`` compares the three records a home keeps of every message: the log (``node.sqlite``
and its head record), the assignments' hash chains, and the weave that holds each signed item.
``backup_home`` makes a consistent copy with SQLite's online backup, which ``check_home`` accepts
and a node starts from.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from tfao.node.store import LAST_MESSAGE, DamagedLog, head_record, last_message_on_disk, read_head
from weavedrive.ans104 import DataItem, InvalidDataItem, b64url_decode, b64url_encode
from weavedrive.store import WeaveError, WeaveStore

LOG = "node.sqlite"
HEAD = LOG + "-head"
WEAVE_INDEX = Path("weave") / "index.sqlite"
# files of a home a backup leaves out: the lock, SQLite's side files (the backup is whole without them)
NOT_BACKED_UP = ("node.lock", "*-wal", "*-shm", "*-journal", LOG, HEAD, "index.sqlite")
MAX_PROBLEMS = 50  # problems listed before the check stops counting


@dataclass
class HomeReport:
    processes: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)


def check_home(home: Path) -> HomeReport:
    """What is wrong with a node home: an unsound log, one shorter than acknowledged, a broken hash
    chain, an assignment that does not verify or match its row, an item the weave does not hold."""
    home, report = Path(home), HomeReport()
    log = home / LOG
    if not log.exists():
        report.add(f"{LOG} is missing")
        return report
    try:
        last = last_message_on_disk(log)
        recorded = read_head(home / HEAD)
    except DamagedLog as exc:
        report.add(str(exc))
        return report
    if recorded is not None and last < recorded:
        report.add(f"{LOG} holds {last} messages, but the node had acknowledged {recorded}")
    conn = sqlite3.connect(f"file:{log}?mode=ro", uri=True)
    weave = _weave(home)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'messages'").fetchone() is None:
            return report
        previous = None
        for row in conn.execute("SELECT process_id, nonce, id, assignment_id, item, assignment, hash_chain "
                                "FROM messages ORDER BY process_id, nonce"):
            pid, nonce, mid, assignment_id, item, assignment, hash_chain = row
            first = previous is None or previous[0] != pid
            report.processes += first
            report.messages += 1
            expected_nonce = 0 if first else previous[1] + 1
            if nonce != expected_nonce:
                report.add(f"process {pid}: nonce {nonce} follows {expected_nonce - 1} (a gap in the log)")
            if hash_chain != _chain_link(pid, None if first else previous[2:]):
                report.add(f"process {pid}: the hash chain breaks at nonce {nonce}")
            _check_items(report, pid, nonce, mid, assignment_id, item, assignment, hash_chain, weave)
            previous = (pid, nonce, assignment_id, hash_chain)
        orphans = conn.execute("SELECT COUNT(*) FROM results r LEFT JOIN messages m ON m.process_id = r.process_id "
                               "AND m.nonce = r.nonce WHERE m.id IS NULL").fetchone()[0]
        if orphans:
            report.add(f"{orphans} results have no message in the log")
    except sqlite3.DatabaseError as exc:
        report.add(f"SQLite cannot read {LOG} ({exc})")
    finally:
        conn.close()
    return report


def _chain_link(pid: str, previous: tuple[str, str] | None) -> str | None:
    """The hash chain a message must carry: after the process id, or after the previous assignment's
    id and chain (section 2.9 of the protocol notes); None if the previous row is itself unreadable."""
    try:
        link = b64url_decode(pid) if previous is None else b64url_decode(previous[0]) + b64url_decode(previous[1])
    except ValueError:
        return None
    return b64url_encode(hashlib.sha256(link).digest())


def _check_items(report: HomeReport, pid: str, nonce: int, mid: str, assignment_id: str, item: bytes,
                 assignment: bytes, hash_chain: str, weave: WeaveStore | None) -> None:
    where = f"process {pid} nonce {nonce}"
    try:
        message, signed = DataItem.parse(item), DataItem.parse(assignment)
    except InvalidDataItem as exc:
        report.add(f"{where}: a stored item does not parse ({exc})")
        return
    if message.id != mid or not message.verify():
        report.add(f"{where}: the message item is not {mid} or its signature does not verify")
    if signed.id != assignment_id or not signed.verify():
        report.add(f"{where}: the assignment is not {assignment_id} or its signature does not verify")
    tags = dict(signed.tags)
    if (tags.get("Process"), tags.get("Nonce"), tags.get("Message"), tags.get("Hash-Chain")) != (
            pid, str(nonce), mid, hash_chain):
        report.add(f"{where}: the assignment's tags do not match the log")
    if weave is not None:
        try:
            weave.verify(mid)
        except (WeaveError, OSError) as exc:  # a data file missing from the weave is an OSError
            report.add(f"{where}: the weave does not hold message {mid} intact ({exc})")


def _weave(home: Path) -> WeaveStore | None:
    """The home's weave (None, with the log's own checks still made, if it has none)."""
    return WeaveStore(home) if (home / WEAVE_INDEX).exists() else None


def backup_home(home: Path, destination: Path) -> HomeReport:
    """Copy a node home to ``destination`` (new or empty), consistently even while its node runs:
    the log first, then the weave's index, then the rest of the files, so the copy's weave holds at
    least every item its log names. Returns the check of the copy."""
    home, destination = Path(home), Path(destination)
    if not (home / LOG).exists():
        raise FileNotFoundError(f"{home} is not a node home (it has no {LOG})")
    if destination.exists() and any(destination.iterdir()):
        raise FileExistsError(f"{destination} is not empty: a backup goes to a new or empty folder")
    destination.mkdir(parents=True, exist_ok=True)
    _sqlite_backup(home / LOG, destination / LOG)
    with sqlite3.connect(destination / LOG) as conn:
        last = conn.execute(LAST_MESSAGE).fetchone()[0]
    (destination / HEAD).write_bytes(head_record(last))
    if (home / WEAVE_INDEX).exists():
        (destination / WEAVE_INDEX).parent.mkdir(parents=True, exist_ok=True)
        _sqlite_backup(home / WEAVE_INDEX, destination / WEAVE_INDEX)
    shutil.copytree(home, destination, ignore=shutil.ignore_patterns(*NOT_BACKED_UP), dirs_exist_ok=True)
    return check_home(destination)


def _sqlite_backup(source: Path, target: Path) -> None:
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # a single file: whole without side files
    src.close()
    dst.close()
