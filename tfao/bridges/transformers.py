"""Host functions behind ``require("transformers")`` in a process.

Model files arrive from Lua as raw bytes, base64 text, weave ids or ``weavedrive.ref`` references; the
context turns each into a Blob named by its sha256. Loaded models are cached by those hashes, and every
result is stored in the context's inference cache under a hash of the call, so replaying a message log
after a restart never runs inference again.
"""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np

from weavedrive.blob import Blob
from tfao.kernels import ops
from tfao.models.sentence import POOLINGS, SentenceEncoder, cached_sentence_encoder, pooling_from_config

DEFAULT_PROMPT = ""
_MANIFEST_PATHS = {
    "model": "model.safetensors",
    "tokenizer": "tokenizer.json",
    "config": "config.json",
    "pooling_config": "1_Pooling/config.json",
    "modules": "modules.json",
    "sentence_config": "sentence_bert_config.json",
}


def _text(value, name: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{name} is not valid UTF-8 text") from None
    if isinstance(value, str):
        return value
    raise ValueError(f"{name} must be a string, got {type(value).__name__}")


def _prompts(value) -> str | list[str]:
    if value is None:
        return DEFAULT_PROMPT
    if isinstance(value, list):
        return [_text(item, "each prompt") for item in value]
    if isinstance(value, dict) and not value:
        return []  # an empty Lua table
    return _text(value, "prompt")


def _json_blob(blob: Blob, name: str) -> dict:
    try:
        return json.loads(blob.read())
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{name} is not valid JSON") from None


def _sources_from_manifest(context, manifest: dict) -> dict:
    """Blobs and sentence-transformers settings named by a model manifest's files."""
    by_path = {entry["path"]: entry for entry in manifest.get("files", [])}
    found = {key: context.blob(by_path[path]["id"]) for key, path in _MANIFEST_PATHS.items() if path in by_path}
    settings = {}
    if "pooling_config" in found:
        settings["pooling"] = pooling_from_config(_json_blob(found["pooling_config"], "the pooling config"))
    if "modules" in found:
        modules = _json_blob(found["modules"], "modules.json")
        settings["normalize_embeddings"] = any(m.get("type", "").endswith("Normalize") for m in modules)
    if "sentence_config" in found:
        settings["max_seq_length"] = _json_blob(found["sentence_config"], "sentence_bert_config.json").get("max_seq_length")
    return {**settings, **{k: found[k] for k in ("model", "tokenizer", "config") if k in found}}


def _model_spec(context, opts: dict) -> dict:
    """The model's blobs and settings from ``opts`` (or from the manifest ``opts.model`` names)."""
    if not isinstance(opts, dict):
        raise ValueError("expected an options table")
    if opts.get("model") is None:
        raise ValueError("opts.model is required (bytes, base64, a weave id or a reference)")
    spec = {"model": context.blob(opts["model"])}
    manifest_of = getattr(context, "manifest", None)
    manifest = manifest_of(spec["model"]) if manifest_of else None
    if manifest is not None:
        spec.update(_sources_from_manifest(context, manifest))
    for name in ("tokenizer", "config"):
        if opts.get(name) is not None:
            spec[name] = context.blob(opts[name])
        elif name not in spec:
            raise ValueError(f"opts.model is not a model manifest (its weave id or a reference to it), so opts.{name}"
                             " is required too: pass a manifest id alone, or model, tokenizer and config each as"
                             " bytes, base64, a weave id or a reference")
    pooling = opts.get("pooling", spec.get("pooling", "mean"))
    pooling = _text(pooling, "pooling")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    spec["pooling"] = pooling
    normalize = opts.get("normalize_embeddings", spec.get("normalize_embeddings", True))
    if not isinstance(normalize, bool):
        raise ValueError("normalize_embeddings must be a boolean")
    spec["normalize_embeddings"] = normalize
    max_length = opts.get("max_seq_length", spec.get("max_seq_length"))
    if max_length is not None and (not isinstance(max_length, int) or max_length < 2):
        raise ValueError("max_seq_length must be an integer of at least 2")
    spec["max_seq_length"] = max_length
    return spec


def _settings(spec: dict) -> dict:
    return {k: spec[k] for k in ("pooling", "normalize_embeddings", "max_seq_length")}


def _model_key(spec: dict) -> str:
    named = {k: spec[k].sha256 for k in ("model", "tokenizer", "config")} | _settings(spec)
    return hashlib.sha256(json.dumps(named, sort_keys=True).encode()).hexdigest()


def _load_encoder(spec: dict) -> SentenceEncoder:
    config = _json_blob(spec["config"], "config")
    weights = spec["model"].path or spec["model"].read()
    try:
        return SentenceEncoder.from_blobs(weights, spec["tokenizer"].read(), config, spec["pooling"],
                                          spec["normalize_embeddings"], spec["max_seq_length"])
    except ValueError:
        raise
    except Exception as exc:  # safetensors / tokenizers parse errors: name the input, keep the reason
        raise ValueError(f"cannot load the model: {exc}") from None


def _to_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32), allow_pickle=False)
    return buffer.getvalue()


def _from_bytes(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_text(context, opts: dict) -> dict:
    """Sentence embeddings: ``{"data": [float...] or [[float...]...], "model_id": opts.model_id}``."""
    spec = _model_spec(context, opts)
    prompts = _prompts(opts.get("prompt"))
    mode = ops.current_mode()
    call = {"function": "bert.encode_text", "model": _model_key(spec), "prompt": prompts, "mode": mode}
    key = hashlib.sha256(json.dumps(call, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    stored = context.cache.get(key)
    if stored is not None:
        vectors = _from_bytes(stored)
    else:
        encoder = cached_sentence_encoder(_model_key(spec), lambda: _load_encoder(spec))
        texts = [prompts] if isinstance(prompts, str) else prompts
        vectors = encoder.encode(texts, mode=mode) if texts else np.zeros((0, encoder.dimension), np.float32)
        if isinstance(prompts, str):
            vectors = vectors[0]
        context.cache.put(key, _to_bytes(vectors))
    model_id = opts.get("model_id")
    return {"data": vectors.astype(np.float64).tolist(),
            "model_id": None if model_id is None else _text(model_id, "model_id")}


def prepare(context, opts: dict) -> dict:
    """Resolve a model's blobs once (for ``pipeline``): the returned table is valid ``encode_text`` options."""
    spec = _model_spec(context, opts)
    return {k: v for k, v in spec.items() if v is not None}


def bridge_functions(context) -> dict:
    return {
        "bert_encode_text": lambda opts: encode_text(context, opts),
        "bert_prepare": lambda opts: prepare(context, opts),
    }
