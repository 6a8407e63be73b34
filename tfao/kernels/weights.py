"""Checkpoint tensors by name, memory-mapped, read through one scoped and shape-checked helper.

``Weights.load(files)`` maps safetensors files (one, or the shards of an index) without reading them;
``weights.pp("encoder.layer.0")`` is a view under a prefix (as candle's ``vb.pp``), and
``weights.get("attention.self.query.weight", (hidden, hidden))`` returns that tensor as float32, or raises
``WeightError`` naming the full key when it is missing or has another shape. float32 tensors come back as
read-only views of the mapped file (no copy: processes that map the same file share its pages); float16
and bfloat16 tensors are converted to float32 once, when they are read.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
           "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


class WeightError(ValueError):
    """A checkpoint that does not hold the tensors a model needs, as the model needs them."""


@dataclass(frozen=True)
class _Stored:
    buffer: object  # an mmap or bytes holding the file
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    def array(self) -> np.ndarray:
        if self.dtype not in _DTYPES:
            raise WeightError(f"unsupported tensor dtype {self.dtype}")
        stored = np.frombuffer(self.buffer, dtype=np.dtype(_DTYPES[self.dtype]).newbyteorder("<"),
                               count=(self.end - self.start) // np.dtype(_DTYPES[self.dtype]).itemsize,
                               offset=self.start).reshape(self.shape)
        if self.dtype == "BF16":  # bfloat16 is the top half of a float32
            return (stored.astype(np.uint32) << 16).view(np.float32)
        return stored


def _index(buffer, origin: str) -> dict[str, _Stored]:
    """The tensors of one safetensors file: an 8-byte header length, a JSON header, then the data."""
    if len(buffer) < 8:
        raise WeightError(f"{origin} is not a safetensors file (too short)")
    (header_length,) = struct.unpack("<Q", buffer[:8])
    if header_length > min(_MAX_HEADER, len(buffer) - 8):
        raise WeightError(f"{origin} is not a safetensors file (bad header length)")
    try:
        header = json.loads(bytes(buffer[8:8 + header_length]))
    except (UnicodeDecodeError, ValueError):
        raise WeightError(f"{origin} is not a safetensors file (unreadable header)") from None
    base, tensors = 8 + header_length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = (base + int(offset) for offset in entry["data_offsets"])
            shape = tuple(int(size) for size in entry["shape"])
            dtype = str(entry["dtype"])
        except (KeyError, TypeError, ValueError):
            raise WeightError(f"{origin}: malformed header entry for tensor {name!r}") from None
        itemsize = np.dtype(_DTYPES.get(dtype, np.uint8)).itemsize
        if not base <= start <= end <= len(buffer) or end - start != itemsize * int(np.prod(shape, dtype=np.int64)):
            raise WeightError(f"{origin}: tensor {name!r} lies outside the file or has the wrong size")
        tensors[name] = _Stored(buffer, dtype, shape, start, end)
    return tensors


def _open(source) -> tuple[object, str]:
    """An mmap of a file path, or the bytes themselves."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "safetensors bytes"
    path = Path(source)
    with open(path, "rb") as handle:
        if path.stat().st_size == 0:
            return b"", str(path.name)
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ), str(path.name)


class Weights:
    """The tensors of a checkpoint under ``prefix``; names are the checkpoint's own."""

    def __init__(self, tensors: Mapping[str, _Stored | np.ndarray], prefix: str = ""):
        self._tensors = tensors
        self.prefix = prefix

    @classmethod
    def load(cls, sources: Iterable | str | Path | bytes) -> "Weights":
        """Map safetensors files (paths or bytes); several sources are the shards of one checkpoint."""
        if isinstance(sources, (str, Path, bytes, bytearray, memoryview)):
            sources = [sources]
        tensors: dict[str, _Stored] = {}
        for source in sources:
            for name, stored in _index(*_open(source)).items():
                if name in tensors:
                    raise WeightError(f"tensor {name!r} appears in two shards")
                tensors[name] = stored
        return cls(tensors)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "Weights":
        return cls(dict(arrays))

    def pp(self, name: str | int) -> "Weights":
        """The same checkpoint under ``prefix.name``."""
        return Weights(self._tensors, f"{self.prefix}{name}.")

    def key(self, name: str) -> str:
        return self.prefix + name

    def has(self, name: str) -> bool:
        return self.key(name) in self._tensors

    def names(self) -> list[str]:
        """The checkpoint names under this prefix, without the prefix."""
        return [name[len(self.prefix):] for name in self._tensors if name.startswith(self.prefix)]

    def get(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """The float32 tensor ``prefix + name``, checked against ``shape`` when given."""
        key = self.key(name)
        if key not in self._tensors:
            raise WeightError(f"checkpoint is missing tensor {key}")
        stored = self._tensors[key]
        found = stored.shape if isinstance(stored, _Stored) else tuple(stored.shape)
        if shape is not None and tuple(found) != tuple(shape):
            raise WeightError(f"tensor {key} has shape {tuple(found)}, expected {tuple(shape)}")
        array = stored.array() if isinstance(stored, _Stored) else np.asarray(stored)
        return array if array.dtype == np.float32 else array.astype(np.float32)

    def renamed(self, rename: Callable[[str], str | None]) -> "Weights":
        """The same tensors under new names (``rename`` returns None to drop one), e.g. to read an
        original single-file checkpoint under its diffusers names."""
        tensors = {}
        for name, stored in self._tensors.items():
            new = rename(name)
            if new is not None:
                if new in tensors:
                    raise WeightError(f"two tensors map to {new!r}")
                tensors[new] = stored
        return Weights(tensors, self.prefix)
