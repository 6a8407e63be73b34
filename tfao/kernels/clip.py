"""CLIP text encoders (transformers' ``CLIPTextModel`` and ``CLIPTextModelWithProjection``) on ``ops``.

Token + position embeddings, pre-LN transformer layers under a causal mask, a final layer norm. The pooled
output is the hidden state at the end-of-text token, found by transformers' rule: configs older than
transformers PR #24773 say ``eos_token_id`` 2 and pool at the largest token id; newer ones pool at the first
``eos_token_id``. Checkpoints name tensors with or without the ``text_model.`` prefix (or inside a Stable
Diffusion single file); the int64 ``position_ids`` buffer is ignored.
"""

from __future__ import annotations

import math

import numpy as np

from . import ops
from .diffusers_folder import read_model_folder
from .networks import nbytes, share_prepared
from .parallel import over_batch, text_pieces
from .weights import WeightError, Weights

_TOKEN_EMBEDDING = "embeddings.token_embedding.weight"
_LEGACY_EOS_ID = 2


def text_config(config: dict) -> dict:
    """The text tower's settings, from a CLIPTextConfig or a full CLIPConfig (``text_config`` inside, and its
    own ``projection_dim``, the size CLIPModel gives ``text_projection``)."""
    if not config.get("text_config"):
        return dict(config)
    text = dict(config["text_config"])
    if "projection_dim" in config:
        text["projection_dim"] = config["projection_dim"]
    return text


def text_model_prefix(weights: Weights) -> str:
    """The prefix in front of the text tower's names: ``""``, ``"text_model."``, or a single file's."""
    prefixes = sorted(name[: -len(_TOKEN_EMBEDDING)] for name in weights.names() if name.endswith(_TOKEN_EMBEDDING))
    if not prefixes:
        raise WeightError(f"checkpoint has no CLIP text tower (no tensor named *{_TOKEN_EMBEDDING})")
    return min(prefixes, key=len)


def _linear(weights: Weights, name: str, rows: int, cols: int, bias: bool = True) -> ops.Linear:
    return ops.Linear(weights.get(f"{name}.weight", (rows, cols)), weights.get(f"{name}.bias", (rows,)) if bias else None)


def _norm(weights: Weights, name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    return weights.get(f"{name}.weight", (width,)), weights.get(f"{name}.bias", (width,))


class _EncoderLayer:
    def __init__(self, weights: Weights, hidden: int, inner: int):
        attention = weights.pp("self_attn")
        q, k, v, self.out = (_linear(attention, f"{name}_proj", hidden, hidden) for name in ("q", "k", "v", "out"))
        self.qkv = ops.Linear.stacked([q, k, v])  # one GEMM in exact mode, the same bits
        self.norm1, self.norm2 = _norm(weights, "layer_norm1", hidden), _norm(weights, "layer_norm2", hidden)
        self.fc1, self.fc2 = _linear(weights, "mlp.fc1", inner, hidden), _linear(weights, "mlp.fc2", hidden, inner)


class CLIPTextModel:
    """``model(input_ids, attention_mask=None)`` -> (last hidden state [B, T, H], pooled output [B, H])."""

    def __init__(self, config: dict, weights: Weights, prepared: ops.PreparedStore | None = None):
        config = text_config(config)
        activation = config.get("hidden_act", "quick_gelu")
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"unsupported hidden_act {activation!r} (supported: {', '.join(ops.ACTIVATIONS)})")
        self.config = config
        self.activation = ops.ACTIVATIONS[activation]
        self.hidden = hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.max_positions = config["max_position_embeddings"]
        self.eos_token_id = config.get("eos_token_id", _LEGACY_EOS_ID)
        self.eps = float(config.get("layer_norm_eps", 1e-5))
        prefix = text_model_prefix(weights)
        tower = weights.pp(prefix[:-1]) if prefix else weights
        self.token_embedding = tower.get(_TOKEN_EMBEDDING, (config["vocab_size"], hidden))
        self.position_embedding = tower.get("embeddings.position_embedding.weight", (self.max_positions, hidden))
        self.layers = [_EncoderLayer(tower.pp("encoder.layers").pp(i), hidden, config["intermediate_size"])
                       for i in range(config["num_hidden_layers"])]
        self.final_norm = _norm(tower, "final_layer_norm", hidden)
        share_prepared(self, prepared)

    @classmethod
    def from_pretrained(cls, folder, variant: str | None = None, prepared: ops.PreparedStore | None = None):
        """Load a folder holding config.json and model[.variant].safetensors."""
        return cls(*read_model_folder(folder, "model", variant), prepared)

    def nbytes(self) -> int:
        return nbytes(self)

    def _attention(self, x, layer, keep, keys, mode):
        batch, length, hidden = x.shape
        head_dim = hidden // self.heads

        qkv = layer.qkv(x, mode=mode)  # [B, T, 3H]
        q, k, v = qkv.reshape(batch, length, 3, self.heads, head_dim).transpose(2, 0, 3, 1, 4)  # 3 x [B, nh, T, hd], views
        scores = ops.matmul(q, k.transpose(0, 1, 3, 2), mode=mode)  # [B, nh, T, T]
        scores *= np.float32(1.0 / math.sqrt(head_dim))
        probs = ops.softmax(scores, where=keep[:, None], mode=mode)  # [B, nh, T, T]
        # Masked keys get probability 0; zeroing their values keeps the bits independent of padding (exact mode).
        v = np.where(keys[:, None, :, None], v, np.float32(0.0))
        context = ops.matmul(probs, v, mode=mode, max_k=self.max_positions)  # [B, nh, T, hd]
        return layer.out(context.transpose(0, 2, 1, 3).reshape(batch, length, hidden), mode=mode)  # [B, T, H]

    def _layer(self, x, layer, keep, keys, mode):
        x = x + self._attention(ops.layer_norm(x, *layer.norm1, self.eps, mode=mode), layer, keep, keys, mode)
        inner = layer.fc1(ops.layer_norm(x, *layer.norm2, self.eps, mode=mode), mode=mode)  # [B, T, I]
        inner = self.activation(inner, mode=mode, out=inner)
        return x + layer.fc2(inner, mode=mode)

    def pooled_positions(self, input_ids: np.ndarray) -> np.ndarray:
        if self.eos_token_id == _LEGACY_EOS_ID:
            return np.argmax(input_ids, axis=-1)
        return np.argmax(input_ids == self.eos_token_id, axis=-1)

    def __call__(self, input_ids, attention_mask=None, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        mode = ops.resolve_mode(mode)
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if input_ids.ndim == 1:
            input_ids = input_ids[None, :]  # [1, T]
        batch, length = input_ids.shape
        if length > self.max_positions:
            raise ValueError(f"sequence of {length} tokens exceeds max_position_embeddings {self.max_positions}")
        if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= len(self.token_embedding)):
            raise ValueError(f"token ids must lie in [0, {len(self.token_embedding)})")
        keys = np.ones((batch, length), dtype=bool) if attention_mask is None else np.asarray(attention_mask).reshape(batch, length) != 0
        return over_batch(lambda rows: self._forward(input_ids[rows], keys[rows], mode), batch,
                          text_pieces(input_ids.size, mode))

    def _forward(self, input_ids, keys, mode):
        batch, length = input_ids.shape
        causal = np.tril(np.ones((length, length), dtype=bool))  # [T, T]
        keep = causal[None] & keys[:, None, :]  # [B, T, T]
        x = self.token_embedding[input_ids] + self.position_embedding[:length]  # [B, T, H]
        for layer in self.layers:
            x = self._layer(x, layer, keep, keys, mode)
        x = ops.layer_norm(x, *self.final_norm, self.eps, mode=mode)
        return x, x[np.arange(batch), self.pooled_positions(input_ids)]


class CLIPTextModelWithProjection(CLIPTextModel):
    """``model(input_ids, attention_mask=None)`` -> (text embeddings [B, P], last hidden state [B, T, H])."""

    def __init__(self, config: dict, weights: Weights, prepared: ops.PreparedStore | None = None):
        super().__init__(config, weights, prepared)
        self.projection = ops.Linear(weights.get("text_projection.weight", (self.config["projection_dim"], self.hidden)),
                                     prepared=prepared)

    def __call__(self, input_ids, attention_mask=None, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        hidden, pooled = super().__call__(input_ids, attention_mask, mode=mode)
        return self.projection(pooled, mode=mode), hidden
