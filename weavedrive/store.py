"""The local weave: signed ANS-104 data items kept under ``<home>/weave/``.

Layout::

    weave/index.sqlite        items (header bytes, owner, block, size, sha256, small data), tags, blocks
    weave/data/<ab>/<id>      the data bytes of a larger item as a plain read-only file (memory-mappable)
    weave/incoming/           data being received; moved into data/ once verified

Every item is verified (signature over header and data) before it is indexed, and gets its own
block on the local chain: ``block = current_height() + 1``.

An item with at most ``INLINE_BYTES`` of data (a message, a manifest, a config) keeps it in the
index: creating a file costs more than the rest of storing such an item, and the node stores one
for every message it schedules.

Tamper policy: at ingestion the data's sha256 is recorded, and for a data file a stamp of the
file's inode, size, mtime and ctime. Small data kept in the index is hashed again at every read;
reading a data file (``data_blob``) compares its stat with the stamp, only when it differs is the
file hashed again, and a mismatching hash is refused with ``TamperedData``. Any write to the file
changes its ctime, which user space cannot set back, so a 4 GB model is hashed once at ingestion,
not once per message. ``verify(id)`` re-hashes the data and re-checks the signature unconditionally.

Fork safety: SQLite connections are opened lazily per process id and thread, never reused
across ``fork``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .blob import Blob

from .ans104 import (DataItem, InvalidDataItem, Signer, b64url_encode, first_tag, first_tags, parse_header, sign_stream,
                     verify_stream)

CHUNK_SIZE = 8 * 1024 * 1024
INLINE_BYTES = 64 * 1024  # items with at most this much data keep it in the index, not in a file of its own
SORTS = {"HEIGHT_DESC": "DESC", "HEIGHT_ASC": "ASC"}

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY,
    timestamp INTEGER NOT NULL,
    indep_hash TEXT NOT NULL,
    previous_block TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner_address TEXT NOT NULL,
    target TEXT,
    block INTEGER NOT NULL REFERENCES blocks(height),
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    header BLOB NOT NULL,
    file_stamp TEXT NOT NULL,
    data BLOB
);
CREATE INDEX IF NOT EXISTS items_owner ON items(owner_address, seq);
CREATE INDEX IF NOT EXISTS items_target ON items(target, seq);
CREATE INDEX IF NOT EXISTS items_block ON items(block, seq);
CREATE TABLE IF NOT EXISTS tags (
    seq INTEGER NOT NULL REFERENCES items(seq),
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (seq, position)
);
CREATE INDEX IF NOT EXISTS tags_name_value ON tags(name, value, seq);
"""


class WeaveError(Exception):
    """A weave operation failed; the message says why in one line."""


class ItemNotFound(WeaveError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TamperedData(WeaveError):
    """A stored data file no longer matches the sha256 recorded when it was verified."""


@dataclass(frozen=True)
class StoredItem:
    """An indexed item: its header fields, where it sits on the local chain, and its data file."""

    id: str
    signature_type: int
    signature: bytes
    owner: bytes
    owner_address: str
    target: str | None
    anchor: bytes
    tags: list[tuple[str, str]]
    block: int
    size: int
    sha256: str
    data_path: Path | None  # None when the index holds the data (see INLINE_BYTES)
    header: bytes
    cursor: str

    def tag(self, name: str, default: str | None = None) -> str | None:
        return first_tag(self.tags, name, default)

    def tags_dict(self) -> dict[str, str]:
        return first_tags(self.tags)

    def item_without_data(self) -> DataItem:
        return parse_header(self.header)[0]

    def tx_json(self) -> dict:
        """The item as a gateway's ``/tx/ID`` JSON (base64url fields and tags) plus ``ownerAddress``."""
        return {
            "format": 2,
            "id": self.id,
            "last_tx": b64url_encode(self.anchor),
            "owner": b64url_encode(self.owner),
            "ownerAddress": self.owner_address,
            "tags": [
                {"name": b64url_encode(name.encode()), "value": b64url_encode(value.encode())}
                for name, value in self.tags
            ],
            "target": self.target or "",
            "quantity": "0",
            "data_size": str(self.size),
            "data_root": "",
            "reward": "0",
            "signature": b64url_encode(self.signature),
            "signature_type": self.signature_type,
            "block_height": self.block,
        }


def file_stamp(path: Path) -> str:
    st = os.stat(path)
    return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def reported(chunks: Iterable[bytes], progress: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        progress(len(chunk))
        yield chunk


def read_chunks(path: Path, start: int = 0, length: int | None = None) -> Iterator[bytes]:
    """``length`` bytes of a file from ``start`` (to the end when None), in chunks."""
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left is None or left > 0:
            chunk = f.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


class IncomingData:
    """Data being received into the store: written to a temporary file and hashed on the way."""

    def __init__(self, directory: Path):
        fd, name = tempfile.mkstemp(dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._sha256 = hashlib.sha256()
        self.size = 0

    def tee(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield the chunks unchanged, keeping a copy of each."""
        for chunk in chunks:
            self._file.write(chunk)
            self._sha256.update(chunk)
            self.size += len(chunk)
            yield chunk

    def finish(self) -> str:
        """Close the file; the hex sha256 of everything written."""
        self._file.close()
        return self._sha256.hexdigest()

    def read_back(self) -> Iterator[bytes]:
        self._file.flush()
        return read_chunks(self.path)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


class WeaveStore:
    """A content-addressed store of verified data items with a local block counter."""

    def __init__(self, home: Path | str, *, clock: Callable[[], float] = time.time):
        self.root = Path(home) / "weave"
        self.data_dir = self.root / "data"
        self.incoming_dir = self.root / "incoming"
        self._clock = clock
        self._local = threading.local()
        for directory in (self.data_dir, self.incoming_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._db().executescript(SCHEMA)
        with self._transaction() as db:
            if "data" not in {row[1] for row in db.execute("PRAGMA table_info(items)")}:  # an older index
                db.execute("ALTER TABLE items ADD COLUMN data BLOB")
            if db.execute("SELECT 1 FROM blocks WHERE height = 0").fetchone() is None:
                genesis = b64url_encode(hashlib.sha384(b"tfao local weave genesis").digest())
                db.execute(
                    "INSERT INTO blocks VALUES (0, ?, ?, '')", (int(self._clock()), genesis)
                )

    # --- connections ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        """This process's and thread's connection (a forked child opens its own)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            # the inherited connection object (if any) is dropped unused, never closed in the child
            local.stale = getattr(local, "db", None)
            local.db = sqlite3.connect(self.root / "index.sqlite", timeout=60, isolation_level=None)
            local.db.execute("PRAGMA journal_mode=WAL")
            local.db.execute("PRAGMA synchronous=NORMAL")
            local.pid = os.getpid()
        return local.db

    def checkpoint(self) -> None:
        """Move the index's write-ahead log into its database file (a node does on a clean stop, so a
        copy of the home is whole without the ``-wal`` file)."""
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- the chain -----------------------------------------------------------------------------

    def current_height(self) -> int:
        return self._db().execute("SELECT MAX(height) FROM blocks").fetchone()[0]

    def block(self, height: int) -> dict:
        """The header of local block ``height`` (ItemNotFound past the current height)."""
        db = self._db()
        row = db.execute("SELECT * FROM blocks WHERE height = ?", (int(height),)).fetchone()
        if row is None:
            raise ItemNotFound(f"block {height} not found (current height {self.current_height()})")
        txs = [r[0] for r in db.execute("SELECT id FROM items WHERE block = ? ORDER BY seq", (height,))]
        return {
            "height": row[0],
            "timestamp": row[1],
            "indep_hash": row[2],
            "previous_block": row[3],
            "txs": txs,
        }

    def _next_block(self, db: sqlite3.Connection, ids: Sequence[str]) -> int:
        height, timestamp, previous = db.execute(
            "SELECT height, timestamp, indep_hash FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        height += 1
        timestamp = max(timestamp, int(self._clock()))  # block times never go backwards
        indep_hash = b64url_encode(
            hashlib.sha384(f"{previous}|{height}|{timestamp}|{','.join(ids)}".encode()).digest()
        )
        db.execute("INSERT INTO blocks VALUES (?, ?, ?, ?)", (height, timestamp, indep_hash, previous))
        return height

    # --- adding items --------------------------------------------------------------------------

    @contextlib.contextmanager
    def receiving(self) -> Iterator[IncomingData]:
        """A temporary data file for an item being received; removed unless ``commit`` took it."""
        incoming = IncomingData(self.incoming_dir)
        try:
            yield incoming
        finally:
            incoming.discard()

    def commit(self, item: DataItem, incoming: IncomingData) -> StoredItem:
        """Index ``item`` (already verified) with the data received in ``incoming``."""
        sha256 = incoming.finish()
        existing = self._find(item.id)
        if existing is not None:
            return existing
        if incoming.size <= INLINE_BYTES:
            return self._index(item, incoming.size, sha256, data=incoming.path.read_bytes())
        path = self._data_path(item.id)
        os.chmod(incoming.path, 0o444)
        try:
            os.replace(incoming.path, path)
        except FileNotFoundError:  # the first item in its folder (a mkdir each time costs more than the rest)
            path.parent.mkdir(exist_ok=True)
            os.replace(incoming.path, path)
        return self._index(item, incoming.size, sha256, stamp=file_stamp(path))

    def _index(self, item: DataItem, size: int, sha256: str, *, data: bytes | None = None, stamp: str = "") -> StoredItem:
        """Record a verified item, its data either ``data`` itself or the file ``stamp`` describes."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM items WHERE id = ?", (item.id,)).fetchone() is None:
                height = self._next_block(db, [item.id])
                seq = db.execute(
                    "INSERT INTO items (id, owner_address, target, block, size, sha256, header, file_stamp, data)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (item.id, item.owner_address, item.target_id, height, size, sha256, item.header_bytes(), stamp,
                     data),
                ).lastrowid
                db.executemany(
                    "INSERT INTO tags VALUES (?, ?, ?, ?)",
                    [(seq, i, name, value) for i, (name, value) in enumerate(item.tags)],
                )
        return self.get(item.id)

    def add_item(self, item: DataItem, *, verified: bool = False) -> StoredItem:
        """Verify a whole data item and store it (a no-op returning the stored copy if present).
        ``verified``: the caller has just checked the signature itself, or made it."""
        if not verified and not item.verify():
            raise InvalidDataItem(f"data item {item.id}: signature does not verify")
        if len(item.data) <= INLINE_BYTES:  # no file: straight into the index
            existing = self._find(item.id)
            if existing is not None:
                return existing
            return self._index(item, len(item.data), hashlib.sha256(item.data).hexdigest(), data=bytes(item.data))
        with self.receiving() as incoming:
            for _ in incoming.tee([item.data]):
                pass
            return self.commit(item, incoming)

    def add_raw_item(self, raw: bytes) -> StoredItem:
        return self.add_item(DataItem.parse(raw))

    def add_stream(self, item: DataItem, chunks: Iterable[bytes], size: int) -> StoredItem:
        """Store an item (from ``parse_header``) whose ``size`` data bytes arrive as chunks."""
        with self.receiving() as incoming:
            if not verify_stream(item, incoming.tee(chunks), size):
                raise InvalidDataItem(f"data item {item.id}: signature does not verify over its data")
            return self.commit(item, incoming)

    def add_bytes(
        self, data: bytes, signer: Signer, tags: Sequence[tuple[str, str]] = (), target: str | None = None
    ) -> StoredItem:
        with self.receiving() as incoming:
            item, _ = sign_stream(signer, lambda: incoming.tee([data]), len(data), target=target, tags=tags)
            return self.commit(item, incoming)

    def add_file(
        self, path: Path | str, signer: Signer, tags: Sequence[tuple[str, str]] = (), target: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> StoredItem:
        """Sign a file and store it, reading it once in chunks (signing and copying share the pass).

        ``progress(n)`` is called as each ``n`` bytes are read."""
        path = Path(path)
        size = path.stat().st_size
        chunks = read_chunks(path) if progress is None else reported(read_chunks(path), progress)
        with self.receiving() as incoming:
            item, _ = sign_stream(signer, lambda: incoming.tee(chunks), size, target=target, tags=tags)
            if incoming.size != size:
                raise WeaveError(f"{path} changed size while it was being added")
            return self.commit(item, incoming)

    # --- reading -------------------------------------------------------------------------------

    def _data_path(self, id: str) -> Path:
        return self.data_dir / id[:2] / id

    def _find(self, id: str) -> StoredItem | None:
        rows = self._select("items.id = ?", [id], limit=1)
        return rows[0] if rows else None

    def has(self, id: str) -> bool:
        return self._db().execute("SELECT 1 FROM items WHERE id = ?", (id,)).fetchone() is not None

    def get(self, id: str) -> StoredItem:
        item = self._find(id)
        if item is None:
            raise ItemNotFound(f"item {id} is not in the local weave")
        return item

    def data_blob(self, id: str) -> Blob:
        """The item's data as a Blob (file-backed, or in memory when the index holds it), checked against the
        recorded sha256 (see module doc)."""
        item = self.get(id)
        if item.data_path is None:
            return Blob(sha256=item.sha256, data=self._checked_inline(item), id=id, size=item.size)
        self._check_data_file(item)
        return Blob.from_file(item.data_path, item.sha256, id=id)

    def read_data(self, id: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.data_blob(id).read_range(offset, length)

    def raw_item_bytes(self, id: str) -> bytes:
        """The whole signed item (header and data) as it was signed."""
        item = self.get(id)
        return item.header + self.data_blob(id).read()

    def _checked_inline(self, item: StoredItem) -> bytes:
        (data,) = self._db().execute("SELECT data FROM items WHERE id = ?", (item.id,)).fetchone()
        actual = hashlib.sha256(data).hexdigest()
        if actual != item.sha256:
            raise TamperedData(f"item {item.id}: its data in the index was modified (sha256 {actual}, expected"
                               f" {item.sha256}); refusing to serve it")
        return data

    def _check_data_file(self, item: StoredItem) -> None:
        try:
            stamp = file_stamp(item.data_path)
        except FileNotFoundError:
            raise TamperedData(f"item {item.id}: its data file is missing from the weave") from None
        db = self._db()
        (recorded,) = db.execute("SELECT file_stamp FROM items WHERE id = ?", (item.id,)).fetchone()
        if stamp == recorded:
            return
        actual = sha256_file(item.data_path)
        if actual != item.sha256:
            raise TamperedData(
                f"item {item.id}: data file was modified on disk (sha256 {actual}, expected {item.sha256});"
                " refusing to serve it"
            )
        db.execute("UPDATE items SET file_stamp = ? WHERE id = ?", (stamp, item.id))

    def verify(self, id: str) -> StoredItem:
        """Re-hash the data and re-verify the signature from disk, whatever the stamp says."""
        item = self.get(id)
        if item.data_path is None:
            chunks = [self._checked_inline(item)]
        else:
            actual = sha256_file(item.data_path)
            if actual != item.sha256:
                raise TamperedData(f"item {id}: data sha256 {actual} does not match the recorded {item.sha256}")
            chunks = read_chunks(item.data_path)
        if not verify_stream(item.item_without_data(), chunks, item.size):
            raise TamperedData(f"item {id}: signature does not verify over the stored data")
        if item.data_path is not None:
            self._db().execute("UPDATE items SET file_stamp = ? WHERE id = ?", (file_stamp(item.data_path), id))
        return item

    # --- queries -------------------------------------------------------------------------------

    def query(
        self,
        ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
        tags: Sequence[tuple[str, Sequence[str]]] | None = None,
        min_block: int | None = None,
        max_block: int | None = None,
        first: int = 100,
        after: str | None = None,
        sort: str = "HEIGHT_DESC",
        recipients: Sequence[str] | None = None,
    ) -> list[StoredItem]:
        """Items matching every given filter (a tag filter matches any of its values), GraphQL-style."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
        direction = SORTS[sort]
        where: list[str] = []
        params: list = []

        def any_of(column: str, values: Sequence[str]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)

        if ids is not None:
            any_of("items.id", ids)
        if owners is not None:
            any_of("items.owner_address", owners)
        if recipients is not None:
            any_of("items.target", recipients)
        for name, values in tags or ():
            values = [values] if isinstance(values, str) else list(values)
            where.append(
                "EXISTS (SELECT 1 FROM tags WHERE tags.seq = items.seq AND tags.name = ?"
                f" AND tags.value IN ({','.join('?' * len(values))}))"
            )
            params += [name, *values]
        if min_block is not None:
            where.append("items.block >= ?")
            params.append(int(min_block))
        if max_block is not None:
            where.append("items.block <= ?")
            params.append(int(max_block))
        if after:
            where.append(f"items.seq {'<' if direction == 'DESC' else '>'} ?")
            params.append(_cursor_seq(after))
        return self._select(" AND ".join(where) or "1", params, limit=int(first), direction=direction)

    def _select(self, where: str, params: Sequence, *, limit: int, direction: str = "DESC") -> list[StoredItem]:
        db = self._db()
        rows = db.execute(
            "SELECT seq, id, block, size, sha256, header, data IS NOT NULL FROM items"
            f" WHERE {where} ORDER BY items.seq {direction} LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [self._stored_item(*row) for row in rows]

    def _stored_item(self, seq: int, id: str, block: int, size: int, sha256: str, header: bytes,
                     inline: int) -> StoredItem:
        item, _ = parse_header(header)
        return StoredItem(
            id=id,
            signature_type=item.signature_type,
            signature=item.signature,
            owner=item.owner,
            owner_address=item.owner_address,
            target=item.target_id,
            anchor=item.anchor,
            tags=item.tags,
            block=block,
            size=size,
            sha256=sha256,
            data_path=None if inline else self._data_path(id),
            header=header,
            cursor=b64url_encode(str(seq).encode()),
        )

    # --- housekeeping --------------------------------------------------------------------------

    def export(self, id: str, destination: Path) -> None:
        """Copy an item's verified data to ``destination`` (atomically)."""
        blob = self.data_blob(id)
        tmp = destination.with_name(destination.name + ".partial")
        if blob.path is None:
            tmp.write_bytes(blob.data)
        else:
            shutil.copyfile(blob.path, tmp)  # the kernel copies a file: no pass through Python for a model
        os.replace(tmp, destination)


def _cursor_seq(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except ValueError:
        raise ValueError(f"bad cursor {cursor!r}") from None


def json_bytes(value: dict) -> bytes:
    """Canonical JSON as served for ``/tx`` and ``/block`` virtual files."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
