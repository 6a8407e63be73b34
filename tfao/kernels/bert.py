"""BERT encoders (BertModel's last hidden state) on the numeric primitives of ``ops``.

Weights are a plain dict of float32 arrays keyed by the checkpoint's names (without the ``bert.`` prefix
that task heads such as BertForMaskedLM add); dense layers are prepared once as ``ops.Linear``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load as load_safetensors_bytes

from . import ops

_PREFIX = "bert."
_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}  # pre-2019 TensorFlow-converted LayerNorm names


def _expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    hidden = config["hidden_size"]
    inner = config["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], hidden),
        "embeddings.position_embeddings.weight": (config["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": (config.get("type_vocab_size", 2), hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    for i in range(config["num_hidden_layers"]):
        layer = f"encoder.layer.{i}."
        for name, (rows, cols) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }.items():
            shapes[layer + name + ".weight"] = (rows, cols)
            shapes[layer + name + ".bias"] = (rows,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[layer + norm + ".weight"] = (hidden,)
            shapes[layer + norm + ".bias"] = (hidden,)
    return shapes


def _canonical_name(name: str, has_prefix: bool) -> str | None:
    if has_prefix:
        if not name.startswith(_PREFIX):
            return None  # a task head (cls.*, classifier.*): not part of the encoder
        name = name[len(_PREFIX):]
    for old, new in _LEGACY_SUFFIXES.items():
        if name.endswith(old) and "LayerNorm" in name:
            name = name[: -len(old)] + new
    return name


def _read_tensors(weights) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file (memory-mapped) or of safetensors bytes."""
    if isinstance(weights, (bytes, bytearray, memoryview)):
        return load_safetensors_bytes(bytes(weights))
    with safe_open(str(weights), framework="numpy") as handle:
        return {name: handle.get_tensor(name) for name in handle.keys()}


def select_weights(tensors: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    """The encoder's float32 weights under canonical names; a missing or mis-shaped tensor is a ValueError."""
    expected = _expected_shapes(config)
    has_prefix = any(name.startswith(_PREFIX) for name in tensors)
    found = {}
    for name, array in tensors.items():
        canonical = _canonical_name(name, has_prefix)
        if canonical in expected:
            found[canonical] = array
    missing = [name for name in expected if name not in found]
    if missing:
        raise ValueError(f"BERT checkpoint is missing tensor(s): {', '.join(missing[:5])}"
                         + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
    for name, shape in expected.items():
        if tuple(found[name].shape) != shape:
            raise ValueError(f"BERT tensor {name} has shape {tuple(found[name].shape)}, expected {shape}")
    return {name: np.asarray(found[name], dtype=np.float32) for name in expected}


class BertModel:
    """``model(input_ids, attention_mask, token_type_ids)`` -> last hidden state, float32 [B, T, H]."""

    def __init__(self, config: dict, weights: dict[str, np.ndarray]):
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported position_embedding_type {config['position_embedding_type']!r}")
        activation = config.get("hidden_act", "gelu")
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"unsupported hidden_act {activation!r} (supported: {', '.join(ops.ACTIVATIONS)})")
        self.config = config
        self.activation = ops.ACTIVATIONS[activation]
        self.heads = config["num_attention_heads"]
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.weights = weights
        self.linears = {
            name[: -len(".weight")]: ops.Linear(array, weights[name[: -len(".weight")] + ".bias"])
            for name, array in weights.items()
            if array.ndim == 2 and name.startswith("encoder.")
        }

    @classmethod
    def from_pretrained(cls, folder) -> "BertModel":
        """Load a Hugging Face folder: config.json + model.safetensors."""
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        return cls.from_safetensors(config, folder / "model.safetensors")

    @classmethod
    def from_safetensors(cls, config: dict | str | bytes, weights) -> "BertModel":
        """From a config (dict or JSON text) and safetensors bytes or a file path."""
        if not isinstance(config, dict):
            config = json.loads(config)
        return cls(config, select_weights(_read_tensors(weights), config))

    @property
    def max_positions(self) -> int:
        return self.config["max_position_embeddings"]

    def _norm(self, x, name, mode):
        return ops.layer_norm(x, self.weights[name + ".weight"], self.weights[name + ".bias"], self.eps, mode=mode)

    def _attention(self, x, keep, prefix, mode):
        batch, length, hidden = x.shape
        head_dim = hidden // self.heads

        def split_heads(name):
            y = self.linears[prefix + name](x, mode=mode)  # [B, T, H]
            return y.reshape(batch, length, self.heads, head_dim).transpose(0, 2, 1, 3)  # [B, nh, T, hd]

        q, k, v = split_heads("attention.self.query"), split_heads("attention.self.key"), split_heads("attention.self.value")
        scores = ops.matmul(q, k.transpose(0, 1, 3, 2), mode=mode)  # [B, nh, T, T]
        scores *= np.float32(1.0 / math.sqrt(head_dim))
        probs = ops.softmax(scores, where=keep[:, None, None, :], mode=mode)  # [B, nh, T, T]
        # Padded keys get probability 0; zeroing their values keeps each column's scale (exact mode)
        # independent of how much padding the batch has.
        v = np.where(keep[:, None, :, None], v, np.float32(0.0))
        context = ops.matmul(probs, v, mode=mode, max_k=self.max_positions)  # [B, nh, T, hd]
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)  # [B, T, H]
        return self.linears[prefix + "attention.output.dense"](context, mode=mode)

    def _layer(self, x, keep, i, mode):
        prefix = f"encoder.layer.{i}."
        x = self._norm(self._attention(x, keep, prefix, mode) + x, prefix + "attention.output.LayerNorm", mode)
        inner = self.activation(self.linears[prefix + "intermediate.dense"](x, mode=mode), mode=mode)  # [B, T, I]
        out = self.linears[prefix + "output.dense"](inner, mode=mode)  # [B, T, H]
        return self._norm(out + x, prefix + "output.LayerNorm", mode)

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, mode: str | None = None) -> np.ndarray:
        mode = ops.resolve_mode(mode)
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if input_ids.ndim == 1:
            input_ids = input_ids[None, :]  # [1, T]
        length = input_ids.shape[1]
        if length > self.max_positions:
            raise ValueError(f"sequence of {length} tokens exceeds max_position_embeddings {self.max_positions}")
        keep = np.ones(input_ids.shape, dtype=bool) if attention_mask is None else np.asarray(attention_mask).reshape(input_ids.shape) != 0
        token_types = np.zeros_like(input_ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64).reshape(input_ids.shape)
        w = self.weights
        x = w["embeddings.word_embeddings.weight"][input_ids]  # [B, T, H]
        x = x + w["embeddings.token_type_embeddings.weight"][token_types]
        x = x + w["embeddings.position_embeddings.weight"][:length]
        x = self._norm(x, "embeddings.LayerNorm", mode)
        for i in range(self.config["num_hidden_layers"]):
            x = self._layer(x, keep, i, mode)
        return x
