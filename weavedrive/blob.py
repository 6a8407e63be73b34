"""Blobs: the bytes a model reads, held in memory or in a verified file, named by their sha256.

Lua hands model files to the bridged modules in four spellings (the seed project's conventions and
WeaveDrive's): raw bytes, base64 text, a weave id, or a reference made by ``weavedrive.ref(id)``.
``to_blob`` turns each into a ``Blob`` so model loaders see one type and can memory-map files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from .ans104 import is_id

BASE64_PATTERN = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


@dataclass(frozen=True)
class Blob:
    """Immutable bytes, either in memory (``data``) or in a file whose content was verified (``path``)."""

    sha256: str
    data: bytes | None = None
    path: Path | None = None
    id: str | None = None  # the weave id the bytes came from, when they came from the weave
    size: int = field(default=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Blob":
        return cls(sha256=hashlib.sha256(data).hexdigest(), data=bytes(data), size=len(data))

    @classmethod
    def from_file(cls, path: Path, sha256: str, id: str | None = None) -> "Blob":
        """A blob backed by a file whose sha256 the caller has already verified."""
        return cls(sha256=sha256, path=Path(path), id=id, size=Path(path).stat().st_size)

    def read(self) -> bytes:
        if self.data is not None:
            return self.data
        return self.path.read_bytes()

    def open(self) -> BinaryIO:
        """The bytes as a binary file to read: the file itself, or a view of the bytes in memory."""
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")

    def read_range(self, offset: int = 0, length: int | None = None) -> bytes:
        """``length`` bytes from ``offset`` (to the end when None), reading no more of a file than that."""
        with self.open() as f:
            f.seek(offset)
            return f.read(-1 if length is None else length)

    def text(self) -> str:
        return self.read().decode("utf-8")


def to_blob(value, resolve_id: Callable[[str], Blob] | None = None) -> Blob:
    """A blob from what Lua passed: a Blob, a weave id, base64 text or raw bytes (tried in that order).

    A 43-character id is only taken as an id when ``resolve_id`` is given (inside a process, WeaveDrive
    resolves it and enforces admissibility); base64 is only taken when the whole value decodes.
    """
    if isinstance(value, Blob):
        return value
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, base64 text, a weave id or a reference, got {type(value).__name__}")
    value = bytes(value)
    if resolve_id is not None and is_id(value):
        return resolve_id(value.decode("ascii"))
    if len(value) >= 4 and BASE64_PATTERN.match(value):
        try:
            return Blob.from_bytes(base64.b64decode(value, validate=False))
        except (binascii.Error, ValueError):
            pass
    return Blob.from_bytes(value)
