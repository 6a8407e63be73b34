"""The host side of Lua's ``require("weavedrive")``: admitted, verified weave data for one process.

A node builds one ``WeaveDrive`` per process (``WeaveDrive.for_process``) and passes it as
``context.drive``; ``bridge_functions(context)`` are the functions lua/weavedrive.lua calls.
Admission failures (``NotAdmitted``: "HALT: FILE NOT FOUND ...") reach the VM as a ``Halt``, which ends
the message whatever the Lua code does (a ``pcall`` around ``getData`` cannot swallow it). Transaction and block headers above the message's block
height are reported as missing, so every node answers the same at the same height.
"""

from __future__ import annotations

import re
from typing import Callable

from weavedrive.blob import Blob
from weavedrive.admission import Admission, NotAdmitted
from weavedrive.manifest import manifest_of
from weavedrive.store import ItemNotFound, WeaveStore, json_bytes
from tfao.sandbox.luavm import Halt

PATH_RE = re.compile(r"^/?(data|tx|block)/([A-Za-z0-9_-]+)$")


class WeaveDrive:
    """What one process sees of the weave: the local store, optionally a gateway, and its admission policy."""

    def __init__(self, store: WeaveStore, admission: Admission, gateway=None):
        self.store = store
        self.admission = admission
        self.gateway = gateway

    @classmethod
    def for_process(
        cls, store: WeaveStore, process: dict, module: dict, *, gateway=None, admit_all: bool = False
    ) -> "WeaveDrive":
        """``process``/``module``: dicts with ``id``, ``owner`` and ``tags`` ((name, value) pairs)."""
        return cls(store, Admission(process, module, store, gateway=gateway, admit_all=admit_all), gateway)

    def data_blob(self, id: str, block_height: int) -> Blob:
        """The verified bytes of an admitted id, fetched from the gateway into the weave if needed;
        ``Halt`` if the process may not read it."""
        try:
            return self._admitted_blob(id, block_height)
        except NotAdmitted as exc:
            raise Halt(str(exc)) from None

    def _admitted_blob(self, id: str, block_height: int) -> Blob:
        self.admission.check(id, block_height)
        if not self.store.has(id):
            if self.gateway is None:
                raise NotAdmitted(f"HALT: FILE NOT FOUND: {id} is admitted but not in the local weave")
            self.gateway.fetch(id, self.store)
        return self.store.data_blob(id)

    def tx(self, id: str, block_height: int) -> dict | None:
        try:
            item = self.store.get(id)
        except ItemNotFound:
            return self.gateway.tx(id) if self.gateway is not None else None
        return item.tx_json() if item.block <= block_height else None

    def block(self, height: int, block_height: int) -> dict | None:
        if height > block_height:
            return None
        try:
            return self.store.block(height)
        except ItemNotFound:
            return self.gateway.block(height) if self.gateway is not None else None


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def bridge_functions(context) -> dict[str, Callable]:
    """The host functions behind lua/weavedrive.lua, bound to one process's context."""
    drive: WeaveDrive = context.drive

    def data_blob(id) -> Blob:
        return drive.data_blob(_text(id), context.block_height())

    def open_path(path) -> dict | None:
        """A virtual file: ``{id, size}`` for /data/ID, ``{content, size}`` for /tx/ID and /block/H."""
        match = PATH_RE.match(_text(path))
        if match is None:
            return None
        kind, name = match.groups()
        if kind == "data":
            return {"id": name, "size": data_blob(name).size}
        if kind == "tx":
            header = drive.tx(name, context.block_height())
        else:
            header = drive.block(int(name), context.block_height()) if name.isdigit() else None
        return None if header is None else {"content": json_bytes(header), "size": len(json_bytes(header))}

    def read(id, offset, length) -> bytes:
        return data_blob(id).read_range(int(offset), int(length))

    def tx(id) -> dict | None:
        return drive.tx(_text(id), context.block_height())

    def block(height) -> dict | None:
        return drive.block(int(height), context.block_height())

    return {
        "ref": data_blob,
        "data": lambda id: data_blob(id).read(),
        "open": open_path,
        "read": read,
        "tx": tx,
        "block": block,
    }


def blob_resolver(context) -> Callable[[str], Blob]:
    """id -> verified, admitted Blob, for the bridged model modules (they accept ids for bytes)."""
    return lambda id: context.drive.data_blob(id, context.block_height())


__all__ = ["WeaveDrive", "NotAdmitted", "bridge_functions", "blob_resolver", "manifest_of"]
