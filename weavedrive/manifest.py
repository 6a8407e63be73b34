"""Model manifests: one data item naming every file of a model by id, size, sha256 and role.

A manifest is a JSON data item tagged ``Type: Model-Manifest``::

    {"type": "Model-Manifest", "version": 1, "name": "sentence-transformers/all-MiniLM-L6-v2",
     "architecture": "BertModel", "library": "sentence-transformers",
     "files": [{"path": "model.safetensors", "id": "...", "size": 90868376,
                "sha256": "...", "role": "weights"}, ...]}

The project pins the models it supports in ``models/*.json`` (the same shape without ids, since
ids depend on the signer); importing a folder whose model name matches a pin refuses any file
whose path, size or sha256 differs from it.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from .blob import Blob

from .ans104 import Signer, is_id
from .store import StoredItem, WeaveStore, sha256_file

MANIFEST_TYPE = "Model-Manifest"
MANIFEST_VERSION = 1
MAX_MANIFEST_BYTES = 1024 * 1024
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack")
TOKENIZER_FILES = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
    "merges.txt", "spiece.model", "sentencepiece.bpe.model", "added_tokens.json", "tokenizer.model",
}
MODULE_FILES = {"modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"}


class ManifestError(ValueError):
    """A manifest is malformed, or a model folder does not match its pinned manifest."""


def file_role(path: str) -> str:
    """What a file in a model folder is for: weights, config, tokenizer, pooling, modules, docs or other."""
    posix = PurePosixPath(path)
    name = posix.name
    if name.endswith(WEIGHT_SUFFIXES):
        return "weights"
    if name in TOKENIZER_FILES or (posix.parent.name == "tokenizer" and len(posix.parts) > 1):
        return "tokenizer"
    if "Pooling" in posix.parent.name:
        return "pooling"
    if name in MODULE_FILES:
        return "modules"
    if name.endswith(".json") and ("config" in name or name == "model_index.json"):
        return "config"
    if name.lower().startswith("readme") or name.endswith(".md"):
        return "docs"
    return "other"


def model_files(folder: Path) -> list[str]:
    """Relative POSIX paths of a model folder's files, sorted; hidden files and folders are skipped."""
    found = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            found.append(relative.as_posix())
    return found


def folder_architecture(folder: Path) -> str | None:
    for config in ("config.json", "model_index.json"):
        try:
            data = json.loads((folder / config).read_text())
        except (OSError, ValueError):
            continue
        if data.get("architectures"):
            return data["architectures"][0]
        if data.get("_class_name"):
            return data["_class_name"]
    return None


def folder_library(files: list[str]) -> str:
    if "modules.json" in files:
        return "sentence-transformers"
    if "model_index.json" in files:
        return "diffusers"
    return "transformers"


# --- pinned manifests ----------------------------------------------------------------------------


def pinned_manifests_dir() -> Path:
    """Where the supported models' pins live: the ``weavedrive.pins`` package data."""
    return Path(str(importlib.resources.files("weavedrive.pins")))


def pinned_manifests() -> dict[str, dict]:
    """Model name -> pinned manifest."""
    pins = {}
    for path in sorted(pinned_manifests_dir().glob("*.json")):
        pin = json.loads(path.read_text())
        pins[pin["name"]] = pin
    return pins


def pinned_manifest(name: str) -> dict | None:
    return pinned_manifests().get(name)


def pin_folder(folder: Path, name: str) -> dict:
    """A pinned manifest (no ids) for a model folder, as kept in ``models/``."""
    files = model_files(folder)
    return {
        "type": MANIFEST_TYPE,
        "version": MANIFEST_VERSION,
        "name": name,
        "architecture": folder_architecture(folder),
        "library": folder_library(files),
        "files": [
            {"path": p, "size": (folder / p).stat().st_size, "sha256": sha256_file(folder / p), "role": file_role(p)}
            for p in files
        ],
    }


def check_against_pin(folder: Path, pin: dict) -> None:
    """Refuse a folder whose files differ from the pin: same paths, sizes (cheap, first) and sha256."""
    name = pin["name"]
    pinned = {entry["path"]: entry for entry in pin["files"]}
    present = set(model_files(folder))
    if present != set(pinned):
        missing, extra = sorted(set(pinned) - present), sorted(present - set(pinned))
        raise ManifestError(f"{folder} does not match the pinned {name}: missing {missing}, unexpected {extra}")
    for path, entry in pinned.items():
        size = (folder / path).stat().st_size
        if size != entry["size"]:
            raise ManifestError(f"{path}: {size} bytes, but the pinned {name} has {entry['size']}")
    for path, entry in pinned.items():
        digest = sha256_file(folder / path)
        if digest != entry["sha256"]:
            raise ManifestError(f"{path}: sha256 {digest} differs from the pinned {name} ({entry['sha256']})")


def guess_model_name(folder: Path) -> str:
    """The pinned model whose paths and sizes match the folder, else the folder's name."""
    files = model_files(folder)
    sizes = {p: (folder / p).stat().st_size for p in files}
    for name, pin in pinned_manifests().items():
        if {e["path"]: e["size"] for e in pin["files"]} == sizes:
            return name
    return folder.resolve().name


# --- import --------------------------------------------------------------------------------------


def import_model(
    store: WeaveStore, folder: Path, signer: Signer, name: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[StoredItem, list[StoredItem]]:
    """Store every file of a model folder and a manifest naming them; returns (manifest, files).

    ``progress(n)`` is called as each ``n`` bytes of the files are read."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder")
    name = name or guess_model_name(folder)
    pin = pinned_manifest(name)
    if pin is not None:
        check_against_pin(folder, pin)
    paths = model_files(folder)
    if not paths:
        raise ManifestError(f"{folder} holds no files")
    stored = [
        store.add_file(folder / path, signer, [("Content-Type", content_type(path)), ("File-Path", path)],
                       progress=progress)
        for path in paths
    ]
    manifest = {
        "type": MANIFEST_TYPE,
        "version": MANIFEST_VERSION,
        "name": name,
        "architecture": folder_architecture(folder),
        "library": folder_library(paths),
        "files": [
            {"path": p, "id": item.id, "size": item.size, "sha256": item.sha256, "role": file_role(p)}
            for p, item in zip(paths, stored)
        ],
    }
    if pin is not None:
        # the bytes were read again while storing: make sure they are still the pinned ones
        pinned_sha256 = {entry["path"]: entry["sha256"] for entry in pin["files"]}
        for entry in manifest["files"]:
            if entry["sha256"] != pinned_sha256[entry["path"]]:
                raise ManifestError(f"{entry['path']} changed while it was being imported")
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    tags = [("Content-Type", "application/json"), ("Type", MANIFEST_TYPE), ("Model-Name", name)]
    return store.add_bytes(body, signer, tags), stored


def content_type(path: str) -> str:
    if path.endswith(".json"):
        return "application/json"
    if path.endswith((".txt", ".md")):
        return "text/plain"
    return "application/octet-stream"


# --- reading manifests -----------------------------------------------------------------------------


def parse_manifest(body: bytes) -> dict:
    """Parse and validate a manifest's JSON; ManifestError says what is wrong."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest too large: {len(body)} bytes")
    try:
        manifest = json.loads(body)
    except ValueError as exc:
        raise ManifestError(f"manifest is not JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("type") != MANIFEST_TYPE:
        raise ManifestError(f"not a model manifest (no \"type\": \"{MANIFEST_TYPE}\")")
    if not isinstance(manifest.get("name"), str) or not isinstance(manifest.get("files"), list):
        raise ManifestError("manifest needs a \"name\" string and a \"files\" list")
    seen = set()
    for entry in manifest["files"]:
        if not isinstance(entry, dict):
            raise ManifestError("manifest files must be objects")
        path = entry.get("path")
        if not isinstance(path, str) or not path or path.startswith("/") or ".." in PurePosixPath(path).parts:
            raise ManifestError(f"bad file path in manifest: {path!r}")
        if path in seen:
            raise ManifestError(f"file {path} listed twice in manifest")
        seen.add(path)
        if not isinstance(entry.get("id"), str) or not is_id(entry["id"]):
            raise ManifestError(f"{path}: bad id {entry.get('id')!r}")
        if not isinstance(entry.get("size"), int) or entry["size"] < 0:
            raise ManifestError(f"{path}: bad size {entry.get('size')!r}")
        if not isinstance(entry.get("sha256"), str) or not SHA256_RE.match(entry["sha256"]):
            raise ManifestError(f"{path}: bad sha256 {entry.get('sha256')!r}")
    return manifest


def manifest_of(blob: Blob) -> dict | None:
    """The validated manifest a blob holds; None if it is not one (ManifestError if it is a broken one)."""
    if blob.size > MAX_MANIFEST_BYTES:
        return None
    body = blob.read()
    if not body.lstrip().startswith(b"{") or f'"{MANIFEST_TYPE}"'.encode() not in body:
        return None
    return parse_manifest(body)


def resolve_files(manifest: dict, resolve_id: Callable[[str], Blob]) -> dict[str, Blob]:
    """Path -> Blob for every file of a manifest, each checked against its pinned size and sha256."""
    files = {}
    for entry in manifest["files"]:
        blob = resolve_id(entry["id"])
        if blob.size != entry["size"] or blob.sha256 != entry["sha256"]:
            raise ManifestError(
                f"{entry['path']} ({entry['id']}): got {blob.size} bytes with sha256 {blob.sha256},"
                f" manifest pins {entry['size']} bytes with sha256 {entry['sha256']}"
            )
        files[entry["path"]] = blob
    return files
