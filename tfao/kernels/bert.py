"""BERT encoders (BertModel's last hidden state) on the numeric primitives of ``ops``.

Weights are read through ``Weights`` (scoped, shape-checked, memory-mapped) under the checkpoint's names,
without the ``bert.`` prefix that task heads such as BertForMaskedLM add; dense layers are ``ops.Linear``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import ops
from .parallel import over_batch, text_pieces
from .weights import Weights

_PREFIX = "bert."
_LEGACY_SUFFIXES = {".gamma": ".weight", ".beta": ".bias"}  # pre-2019 TensorFlow-converted LayerNorm names
_QKV = ("attention.self.query", "attention.self.key", "attention.self.value")
_QKV_FUSED = "attention.self.query_key_value"  # the three as one [3H, H] layer: one GEMM, the same bits


def encoder_weights(weights: Weights) -> Weights:
    """The encoder's tensors under canonical names: without the ``bert.`` prefix of task heads (whose own
    tensors, cls.* or classifier.*, are dropped) and with legacy LayerNorm names renamed."""
    has_prefix = any(name.startswith(_PREFIX) for name in weights.names())

    def canonical(name: str) -> str | None:
        if has_prefix:
            if not name.startswith(_PREFIX):
                return None
            name = name[len(_PREFIX):]
        for old, new in _LEGACY_SUFFIXES.items():
            if name.endswith(old) and "LayerNorm" in name:
                name = name[: -len(old)] + new
        return name

    return weights.renamed(canonical)


def _norm_params(weights: Weights, size: int) -> tuple[np.ndarray, np.ndarray]:
    return weights.get("weight", (size,)), weights.get("bias", (size,))


class BertModel:
    """``model(input_ids, attention_mask, token_type_ids)`` -> last hidden state, float32 [B, T, H]."""

    def __init__(self, config: dict, weights: Weights, prepared: ops.PreparedStore | None = None):
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"unsupported position_embedding_type {config['position_embedding_type']!r}")
        activation = config.get("hidden_act", "gelu")
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"unsupported hidden_act {activation!r} (supported: {', '.join(ops.ACTIVATIONS)})")
        self.config = config
        self.activation = ops.ACTIVATIONS[activation]
        self.heads = config["num_attention_heads"]
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        hidden, inner = config["hidden_size"], config["intermediate_size"]
        weights = encoder_weights(weights)
        embeddings = weights.pp("embeddings")
        self.embeddings = {
            "word": embeddings.get("word_embeddings.weight", (config["vocab_size"], hidden)),
            "position": embeddings.get("position_embeddings.weight", (config["max_position_embeddings"], hidden)),
            "token_type": embeddings.get("token_type_embeddings.weight", (config.get("type_vocab_size", 2), hidden)),
        }
        self.norms = {"embeddings.LayerNorm": _norm_params(embeddings.pp("LayerNorm"), hidden)}
        self.linears = {}
        shapes = {"attention.output.dense": (hidden, hidden), "intermediate.dense": (inner, hidden),
                  "output.dense": (hidden, inner)}
        for i in range(config["num_hidden_layers"]):
            layer = weights.pp(f"encoder.layer.{i}")
            parts = [ops.Linear.load(layer.pp(name), (hidden, hidden)) for name in _QKV]
            self.linears[layer.key(_QKV_FUSED)] = ops.Linear.stacked(parts, prepared)
            for name, shape in shapes.items():
                self.linears[layer.key(name)] = ops.Linear.load(layer.pp(name), shape, prepared)
            for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
                self.norms[layer.key(norm)] = _norm_params(layer.pp(norm), hidden)

    @classmethod
    def from_pretrained(cls, folder, prepared: ops.PreparedStore | None = None) -> "BertModel":
        """Load a Hugging Face folder: config.json + model.safetensors."""
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        return cls(config, Weights.load(folder / "model.safetensors"), prepared)

    @classmethod
    def from_safetensors(cls, config: dict | str | bytes, weights, prepared: ops.PreparedStore | None = None) -> "BertModel":
        """From a config (dict or JSON text) and safetensors bytes or a file path."""
        if not isinstance(config, dict):
            config = json.loads(config)
        return cls(config, Weights.load(weights), prepared)

    def nbytes(self) -> int:
        """Bytes the model references: embeddings, norms and each dense layer (see ``ops.Linear.nbytes``)."""
        arrays = list(self.embeddings.values()) + [a for pair in self.norms.values() for a in pair]
        return sum(a.nbytes for a in arrays) + sum(linear.nbytes() for linear in self.linears.values())

    @property
    def max_positions(self) -> int:
        return self.config["max_position_embeddings"]

    def _norm(self, x, name, mode):
        weight, bias = self.norms[name]
        return ops.layer_norm(x, weight, bias, self.eps, mode=mode)

    def _attention(self, x, keep, prefix, mode):
        batch, length, hidden = x.shape
        head_dim = hidden // self.heads

        qkv = self.linears[prefix + _QKV_FUSED](x, mode=mode)  # [B, T, 3H]
        q, k, v = qkv.reshape(batch, length, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)  # 3 x [B, nh, T, hd], views
        scores = ops.matmul(q, k.transpose(0, 1, 3, 2), mode=mode)  # [B, nh, T, T]
        scores *= np.float32(1.0 / math.sqrt(head_dim))
        probs = ops.softmax(scores, where=None if keep is None else keep[:, None, None, :], mode=mode)  # [B, nh, T, T]
        if mode == "exact" and keep is not None:
            # Padded keys get probability 0; zeroing their values keeps each column's scale independent of
            # how much padding the batch has.
            v = np.where(keep[:, None, :, None], v, np.float32(0.0))
        context = ops.matmul(probs, v, mode=mode, max_k=self.max_positions)  # [B, nh, T, hd]
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, hidden)  # [B, T, H]
        return self.linears[prefix + "attention.output.dense"](context, mode=mode)

    def _layer(self, x, keep, i, mode):
        prefix = f"encoder.layer.{i}."
        x = self._norm(self._attention(x, keep, prefix, mode) + x, prefix + "attention.output.LayerNorm", mode)
        inner = self.linears[prefix + "intermediate.dense"](x, mode=mode)  # [B, T, I]
        inner = self.activation(inner, mode=mode, out=inner)
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
        keep = None if attention_mask is None else np.asarray(attention_mask).reshape(input_ids.shape) != 0
        if keep is not None and keep.all():
            keep = None  # no padding: masking would change nothing, so skip its passes
        token_types = np.zeros_like(input_ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64).reshape(input_ids.shape)
        return over_batch(lambda rows: self._forward(input_ids[rows], None if keep is None else keep[rows],
                                                     token_types[rows], mode),
                          len(input_ids), text_pieces(input_ids.size, mode))

    def _forward(self, input_ids, keep, token_types, mode):
        length = input_ids.shape[1]
        x = self.embeddings["word"][input_ids]  # [B, T, H]
        x = x + self.embeddings["token_type"][token_types]
        x = x + self.embeddings["position"][:length]
        x = self._norm(x, "embeddings.LayerNorm", mode)
        for i in range(self.config["num_hidden_layers"]):
            x = self._layer(x, keep, i, mode)
        return x
