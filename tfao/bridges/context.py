"""What a process's bridged modules (``weavedrive``, ``transformers``) see of the host.

A ``ProcessContext`` is built once per process host (the node hands the host this class as its context
factory): the process and module records, the message being evaluated (its Block-Height and Timestamp
gate WeaveDrive admissibility), the process's math mode, the inference-result cache, the prepared-weights
store under the node home, the node's weave (which also receives the outputs a call stores with
``store = true``), and the data resolver that turns bytes, base64, ids and references into blobs.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Callable

from weavedrive.ans104 import first_tag
from weavedrive.blob import Blob, to_blob
from weavedrive.store import WeaveStore
from tfao.bridges.weavedrive import WeaveDrive
from tfao.kernels.ops import PreparedStore
from tfao.sandbox.luavm import lua_sources


def bridge_sources() -> dict[bytes, bytes]:
    """The Lua side of the bridged modules (``transformers``, ``weavedrive``): module name -> source."""
    return lua_sources("tfao.bridges")


class InferenceCache:
    """Deterministic inference results by a hash of their inputs, so replays never recompute them.

    One SQLite file per node home; a connection per OS process (process hosts fork).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._pid = None
        self._db = None

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            self._pid = os.getpid()
        return self._db

    def get(self, key: str) -> bytes | None:
        row = self._conn().execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: bytes) -> None:
        self._conn().execute("INSERT OR IGNORE INTO results (key, value) VALUES (?, ?)", (key, value))


class ProcessContext:
    """The host side of one process's bridged modules."""

    def __init__(self, config):
        self.config = config
        self.process = {"id": config.process_id, "owner": config.process_owner, "tags": config.process_tags}
        self.module = {"id": config.module_id, "owner": config.module_owner, "tags": config.module_tags}
        self.cache = InferenceCache(Path(config.home) / "inference.sqlite")
        self.prepared = PreparedStore(Path(config.home) / "prepared")
        # exact math unless the process asks otherwise: only exact results agree across machines
        self.math_mode = first_tag(config.process_tags, "Math-Mode", "exact")
        self.message: dict = {}
        self.drive: WeaveDrive | None = None
        self.weave: WeaveStore | None = None  # the node home's weave, where stored outputs go
        self._resolve_id: Callable[[str], Blob] | None = None
        self._manifest_of: Callable[[Blob], dict | None] | None = None

    def set_message(self, msg: dict) -> None:
        self.message = msg

    def block_height(self) -> int:
        return int(self.message.get("Block-Height") or 0)

    def blob(self, value) -> Blob:
        return to_blob(value, self._resolve_id)

    def manifest(self, blob: Blob) -> dict | None:
        return self._manifest_of(blob) if self._manifest_of else None

    def lua_sources(self) -> dict[bytes, bytes]:
        return bridge_sources()

    def bridges(self) -> dict[str, dict[str, Callable]]:
        """The bridged modules, by Lua module name."""
        from tfao.bridges import transformers as transformers_bridge, weavedrive as weavedrive_bridge

        self.weave = WeaveStore(self.config.home)
        self.drive = WeaveDrive.for_process(
            self.weave, self.process, self.module, admit_all=bool(self.config.options.get("admit_all"))
        )
        self._resolve_id = weavedrive_bridge.blob_resolver(self)
        self._manifest_of = weavedrive_bridge.manifest_of
        return {
            "weavedrive": weavedrive_bridge.bridge_functions(self),
            "transformers": transformers_bridge.bridge_functions(self),
        }
