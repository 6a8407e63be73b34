"""One reader of model sources: a Hugging Face / sentence-transformers / diffusers folder, or the files a
weave manifest names, through the same calls.

``source.file("config.json")`` is a path (folders) or a verified Blob (weave files), ``source.read``/
``source.json`` give its bytes and parsed JSON, ``source.has`` asks, and ``source.sub("unet")`` is a
diffusers component folder. ``source.key`` names the content for the model cache: the folder's path, or
the sha256 of every file for weave files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from tfao.kernels.weights import Weights
from weavedrive.blob import Blob


class SourceError(ValueError):
    """A model source lacks a file the model needs, or holds one it cannot read."""


class ModelSource:
    """A model's files by relative POSIX path. ``files`` maps path -> a Path, a Blob, or a callable
    giving a Blob (weave files are resolved, and admission-checked, only when a model reads them)."""

    def __init__(self, files: Mapping[str, Path | Blob | Callable[[], Blob]], key: str, origin: str,
                 prefix: str = ""):
        self._files = files
        self._key = key
        self.origin = origin
        self.prefix = prefix

    @classmethod
    def from_folder(cls, folder) -> "ModelSource":
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise SourceError(f"{folder.name} is not a model folder")
        files = {
            path.relative_to(folder).as_posix(): path
            for path in sorted(folder.rglob("*"))
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        }
        return cls(files, f"folder:{folder}", folder.name)

    @classmethod
    def from_manifest(cls, manifest: dict, resolve_id: Callable[[str], Blob]) -> "ModelSource":
        """The files of a validated weave manifest, each resolved by id when first read and checked
        against the manifest's size and sha256."""

        def resolver(entry: dict) -> Callable[[], Blob]:
            def resolve() -> Blob:
                blob = resolve_id(entry["id"])
                if blob.size != entry["size"] or blob.sha256 != entry["sha256"]:
                    raise SourceError(f"{entry['path']} does not match the size and sha256 its manifest pins")
                return blob
            return resolve

        entries = sorted(manifest["files"], key=lambda entry: entry["path"])
        key = _content_key((entry["path"], entry["sha256"]) for entry in entries)
        return cls({entry["path"]: resolver(entry) for entry in entries}, key, manifest.get("name") or "a manifest")

    @classmethod
    def from_blobs(cls, blobs: Mapping[str, Blob], origin: str = "the given files") -> "ModelSource":
        """Files handed over one by one (e.g. from Lua: model, tokenizer and config bytes)."""
        return cls(dict(blobs), _content_key(sorted((path, blob.sha256) for path, blob in blobs.items())), origin)

    def overlaid(self, blobs: Mapping[str, Blob]) -> "ModelSource":
        """This source with some files replaced or added."""
        if not blobs:
            return self
        files = dict(self._files) | {self.prefix + path: blob for path, blob in blobs.items()}
        extra = _content_key(sorted((path, blob.sha256) for path, blob in blobs.items()))
        return ModelSource(files, f"{self._key}+{extra}", self.origin, self.prefix)

    @property
    def key(self) -> str:
        return f"{self._key}/{self.prefix}" if self.prefix else self._key

    def sub(self, folder: str) -> "ModelSource":
        """A component folder (diffusers: ``unet``, ``vae``, ``text_encoder``...)."""
        return ModelSource(self._files, self._key, self.origin, f"{self.prefix}{folder.strip('/')}/")

    def paths(self) -> list[str]:
        """The relative paths under this source, sorted."""
        return sorted(path[len(self.prefix):] for path in self._files if path.startswith(self.prefix))

    def has(self, path: str) -> bool:
        return self._full(path) in self._files

    def file(self, path: str) -> Path | Blob:
        full = self._full(path)
        if full not in self._files:
            raise SourceError(f"{self.origin} has no file {full}")
        found = self._files[full]
        return found() if callable(found) else found

    def read(self, path: str) -> bytes:
        found = self.file(path)
        return found.read_bytes() if isinstance(found, Path) else found.read()

    def local(self, path: str) -> Path | bytes:
        """A file path when the bytes lie in a file (so loaders can memory-map them), else the bytes."""
        found = self.file(path)
        if isinstance(found, Path):
            return found
        return found.path if found.path is not None else found.read()

    def json(self, path: str) -> dict | list:
        data = self.read(path)
        try:
            return json.loads(data)
        except (UnicodeDecodeError, ValueError):
            raise SourceError(f"{self._full(path)} is not valid JSON") from None

    def json_or(self, path: str, default):
        return self.json(path) if self.has(path) else default

    def _full(self, path: str) -> str:
        return self.prefix + PurePosixPath(path).as_posix()

    def __repr__(self) -> str:
        return f"ModelSource({self.origin!r})"


def _content_key(named_hashes) -> str:
    digest = hashlib.sha256(json.dumps([list(pair) for pair in named_hashes]).encode()).hexdigest()
    return f"sha256:{digest}"


def open_source(model, home=None) -> ModelSource:
    """A ModelSource from a model folder, or a manifest id in the weave of the node home ``home``
    (default ``$TFAO_HOME`` or ``~/.tfao``)."""
    from weavedrive.ans104 import is_id
    from weavedrive.manifest import manifest_of
    from weavedrive.store import WeaveStore
    from weavedrive.wallet import home_dir

    if isinstance(model, ModelSource):
        return model
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        return ModelSource.from_folder(model)
    if isinstance(model, str) and is_id(model):
        store = WeaveStore(home if home is not None else home_dir())
        if not store.has(model):
            raise SourceError(f"{model} is neither a model folder nor an id in the local weave")
        manifest = manifest_of(store.data_blob(model))
        if manifest is None:
            raise SourceError(f"{model} is not a model manifest")
        return ModelSource.from_manifest(manifest, store.data_blob)
    raise SourceError(f"{model!r} is neither a model folder nor a manifest id")


def load_weights(source: ModelSource) -> Weights:
    """model.safetensors, or the shards model.safetensors.index.json names (memory-mapped when local)."""
    if source.has("model.safetensors.index.json"):
        index = source.json("model.safetensors.index.json")
        shards = sorted(set(index.get("weight_map", {}).values())) if isinstance(index, dict) else []
        if not shards:
            raise SourceError("model.safetensors.index.json names no shards")
        files = [source.local(shard) for shard in shards]
    else:
        files = [source.local("model.safetensors")]
    try:
        return Weights.load(files)
    except ValueError as exc:
        raise ValueError(f"cannot load the model: {exc}") from None
