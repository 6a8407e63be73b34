"""T5 encoder-decoders (T5ForConditionalGeneration) and encoders (T5EncoderModel) on the primitives of ``ops``.

Every variant Hugging Face checkpoints use is read from config.json: v1.0 (ReLU feed-forward, embeddings
tied to the head and decoder output scaled by d_model**-0.5), v1.1 / flan (gated tanh-GELU, untied
``lm_head``, no scaling), ``d_kv`` independent of d_model / heads, more or fewer decoder layers than encoder
layers, relative position buckets and distance from the config. Incremental decoding keeps self-attention
keys and values per layer and computes cross-attention keys and values once per encoded batch.

Exact mode: every result row depends only on that sequence's own tokens, so a prompt gives the same bits
alone, inside a padded batch, and decoded with or without the key/value cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import generation, ops
from .parallel import over_batch, text_pieces
from .weights import Weights

MAX_KEYS = 2048  # attention length bound: exact-mode bits (21) fixed whatever the padding or decoded length


@dataclass(frozen=True)
class T5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_decoder_layers: int
    num_heads: int
    num_buckets: int
    max_distance: int
    eps: float
    activation: str
    gated: bool
    scale_decoder_outputs: bool
    pad_token_id: int
    eos_token_id: int
    decoder_start_token_id: int

    @classmethod
    def from_dict(cls, config: dict) -> "T5Config":
        projection = config.get("feed_forward_proj", "relu")
        parts = projection.split("-")
        if len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(f"feed_forward_proj must be 'ACT' or 'gated-ACT', got {projection!r}")
        activation = "gelu_new" if projection == "gated-gelu" else parts[-1]  # transformers' legacy alias
        if activation not in ops.ACTIVATIONS:
            raise ValueError(f"unsupported T5 activation {activation!r} (supported: {', '.join(ops.ACTIVATIONS)})")
        # v1.1 / flan say tie_word_embeddings: false, which also means no scaling before the head
        scale = config.get("scale_decoder_outputs", config.get("tie_word_embeddings", True) is not False)
        eos = config.get("eos_token_id", 1)
        try:
            num_layers = int(config["num_layers"])
            return cls(
                vocab_size=int(config["vocab_size"]), d_model=int(config["d_model"]), d_kv=int(config["d_kv"]),
                d_ff=int(config["d_ff"]), num_layers=num_layers,
                num_decoder_layers=int(config.get("num_decoder_layers") or num_layers),
                num_heads=int(config["num_heads"]),
                num_buckets=int(config.get("relative_attention_num_buckets", 32)),
                max_distance=int(config.get("relative_attention_max_distance", 128)),
                eps=float(config.get("layer_norm_epsilon", 1e-6)), activation=activation, gated=len(parts) == 2,
                scale_decoder_outputs=bool(scale), pad_token_id=int(config.get("pad_token_id", 0)),
                eos_token_id=int(eos[0] if isinstance(eos, list) else eos),
                decoder_start_token_id=int(config.get("decoder_start_token_id", config.get("pad_token_id", 0))),
            )
        except KeyError as missing:
            raise ValueError(f"T5 config.json lacks {missing.args[0]!r}") from None


def relative_position_buckets(relative_position: np.ndarray, bidirectional: bool, num_buckets: int,
                              max_distance: int) -> np.ndarray:
    """Mesh TensorFlow's buckets of ``key - query`` offsets: exact below num_buckets / 2 (or / 4 when
    bidirectional), then logarithmic up to ``max_distance``. Computed per distinct distance in float64 on
    integers, so the table is the same everywhere."""
    relative_position = np.asarray(relative_position, dtype=np.int64)
    buckets = np.zeros(relative_position.shape, dtype=np.int64)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0) * num_buckets
        distance = np.abs(relative_position)
    else:
        distance = -np.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    table = np.arange(int(distance.max(initial=0)) + 1)
    large = table >= max_exact
    log_ratio = math.log(max_distance / max_exact)
    table[large] = [min(max_exact + int(math.log(d / max_exact) / log_ratio * (num_buckets - max_exact)),
                        num_buckets - 1) for d in table[large]]
    return buckets + table[distance]


class _Attention:
    """Multi-head attention without score scaling (T5 folds it into the weights), plus a relative position
    bias table when this is the first layer of its stack."""

    def __init__(self, weights: Weights, config: T5Config, with_bias_table: bool, prepared):
        inner = config.num_heads * config.d_kv
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.q, self.k, self.v = (_linear(weights, name, (inner, config.d_model), prepared) for name in "qkv")
        self.o = _linear(weights, "o", (config.d_model, inner), prepared)
        self.bias_table = (weights.get("relative_attention_bias.weight", (config.num_buckets, config.num_heads))
                           if with_bias_table else None)

    def heads_of(self, linear: ops.Linear, x: np.ndarray, mode: str) -> np.ndarray:
        batch, length, _ = x.shape
        y = linear(x, mode=mode).reshape(batch, length, self.heads, self.d_kv)  # [B, T, nh, dk]
        return y.transpose(0, 2, 1, 3)  # [B, nh, T, dk]

    def keys_values(self, x: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
        return self.heads_of(self.k, x, mode), self.heads_of(self.v, x, mode)

    def __call__(self, x, keys, values, bias, visible, mode) -> np.ndarray:
        """x [B, Tq, D] attends keys/values [B, nh, Tk, dk]; bias [1, nh, Tq, Tk] or None; visible broadcasts
        to [B, nh, Tq, Tk]."""
        batch, length, _ = x.shape
        q = self.heads_of(self.q, x, mode)  # [B, nh, Tq, dk]
        scores = ops.matmul(q, keys.transpose(0, 1, 3, 2), mode=mode)  # [B, nh, Tq, Tk]
        if bias is not None:
            scores += bias
        probs = ops.softmax(scores, where=visible, mode=mode)
        context = ops.weighted_rows(probs, values, mode=mode, max_k=MAX_KEYS)  # [B, nh, Tq, dk]
        context = context.transpose(0, 2, 1, 3).reshape(batch, length, self.heads * self.d_kv)  # [B, Tq, nh*dk]
        return self.o(context, mode=mode)


class _FeedForward:
    def __init__(self, weights: Weights, config: T5Config, prepared):
        self.activation = ops.ACTIVATIONS[config.activation]
        shape = (config.d_ff, config.d_model)
        if config.gated:  # v1.1: act(wi_0 x) * wi_1 x
            self.wi, self.gate = _linear(weights, "wi_0", shape, prepared), _linear(weights, "wi_1", shape, prepared)
        else:
            self.wi, self.gate = _linear(weights, "wi", shape, prepared), None
        self.wo = _linear(weights, "wo", (config.d_model, config.d_ff), prepared)

    def __call__(self, x: np.ndarray, mode: str) -> np.ndarray:
        hidden = self.wi(x, mode=mode)  # [B, T, F]
        hidden = self.activation(hidden, mode=mode, out=hidden)
        if self.gate is not None:
            hidden = hidden * self.gate(x, mode=mode)
        return self.wo(hidden, mode=mode)  # [B, T, D]


class _Norm:
    def __init__(self, weights: Weights, name: str, config: T5Config):
        self.weight = weights.get(name, (config.d_model,))
        self.eps = config.eps

    def __call__(self, x: np.ndarray, mode: str) -> np.ndarray:
        return ops.rms_norm(x, self.weight, self.eps, mode=mode)


class _Block:
    """One pre-norm residual layer: self-attention, cross-attention (decoder only), feed-forward."""

    def __init__(self, weights: Weights, config: T5Config, first: bool, decoder: bool, prepared):
        self.self_norm = _Norm(weights, "layer.0.layer_norm.weight", config)
        self.self_attention = _Attention(weights.pp("layer.0.SelfAttention"), config, first, prepared)
        if decoder:
            self.cross_norm = _Norm(weights, "layer.1.layer_norm.weight", config)
            self.cross_attention = _Attention(weights.pp("layer.1.EncDecAttention"), config, False, prepared)
        ff = "layer.2" if decoder else "layer.1"
        self.ff_norm = _Norm(weights, f"{ff}.layer_norm.weight", config)
        self.ff = _FeedForward(weights.pp(f"{ff}.DenseReluDense"), config, prepared)

    def nbytes(self) -> int:
        attentions = [self.self_attention] + ([self.cross_attention] if hasattr(self, "cross_attention") else [])
        linears = [linear for a in attentions for linear in (a.q, a.k, a.v, a.o)]
        linears += [linear for linear in (self.ff.wi, self.ff.gate, self.ff.wo) if linear is not None]
        norms = [self.self_norm, self.ff_norm] + ([self.cross_norm] if hasattr(self, "cross_norm") else [])
        return sum(linear.nbytes() for linear in linears) + sum(norm.weight.nbytes for norm in norms)


class _Stack:
    """Embedding lookup, blocks and the final norm of an encoder or decoder."""

    def __init__(self, weights: Weights, config: T5Config, decoder: bool, prepared):
        layers = config.num_decoder_layers if decoder else config.num_layers
        self.config, self.decoder = config, decoder
        self.blocks = [_Block(weights.pp("block").pp(i), config, i == 0, decoder, prepared) for i in range(layers)]
        self.final_norm = _Norm(weights, "final_layer_norm.weight", config)

    def nbytes(self) -> int:
        """Bytes referenced: dense layers (see ``ops.Linear.nbytes``), norms and the bias table."""
        table = self.blocks[0].self_attention.bias_table
        return sum(block.nbytes() for block in self.blocks) + self.final_norm.weight.nbytes + table.nbytes

    def position_bias(self, query_start: int, query_length: int, key_length: int) -> np.ndarray:
        """The first block's bias for queries at ``query_start...`` over keys 0..key_length-1 -> [1, nh, Tq, Tk]."""
        queries = np.arange(query_start, query_start + query_length)[:, None]
        relative = np.arange(key_length)[None, :] - queries  # [Tq, Tk]
        buckets = relative_position_buckets(relative, not self.decoder, self.config.num_buckets,
                                            self.config.max_distance)
        table = self.blocks[0].self_attention.bias_table
        return table[buckets].transpose(2, 0, 1)[None]  # [1, nh, Tq, Tk]


class T5Encoder:
    """``encoder(input_ids, attention_mask)`` -> last hidden state, float32 [B, S, D]."""

    def __init__(self, config: T5Config, weights: Weights, embedding: np.ndarray, prepared=None):
        self.config = config
        self.embedding = embedding
        self.stack = _Stack(weights.pp("encoder"), config, False, prepared)

    def __call__(self, input_ids, attention_mask=None, mode: str | None = None) -> np.ndarray:
        mode = ops.resolve_mode(mode)
        input_ids, keep = _ids_and_mask(input_ids, attention_mask)
        length = input_ids.shape[1]
        bias = self.stack.position_bias(0, length, length)
        return over_batch(lambda rows: self._forward(input_ids[rows], keep[rows], bias, mode), len(input_ids),
                          text_pieces(input_ids.size, mode))

    def _forward(self, input_ids, keep, bias, mode):
        visible = keep[:, None, None, :]  # [B, 1, 1, S]
        x = self.embedding[input_ids]  # [B, S, D]
        for block in self.stack.blocks:
            h = block.self_norm(x, mode)
            keys, values = block.self_attention.keys_values(h, mode)
            x = x + block.self_attention(h, keys, values, bias, visible, mode)
            x = x + block.ff(block.ff_norm(x, mode), mode)
        return self.stack.final_norm(x, mode)


class DecoderState:
    """One batch being decoded: the encoder output's cross-attention keys/values (computed once), and the
    self-attention keys/values of the tokens decoded so far (when caching)."""

    def __init__(self, model: "T5ForConditionalGeneration", encoded: np.ndarray, keep: np.ndarray, mode: str,
                 use_cache: bool):
        self.model, self.mode, self.use_cache = model, mode, use_cache
        self.cross = [block.cross_attention.keys_values(encoded, mode) for block in model.decoder.blocks]
        self.cross_visible = keep[:, None, None, :]  # [B, 1, 1, S]
        self.cache: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.tokens = np.zeros((encoded.shape[0], 0), dtype=np.int64)  # [B, T] fed so far

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    def select(self, rows) -> None:
        """Keep (and repeat) the batch rows ``rows``: beam reordering and beam expansion."""
        rows = np.asarray(rows, dtype=np.int64)
        self.cross = [(k[rows], v[rows]) for k, v in self.cross]
        self.cross_visible = self.cross_visible[rows]
        self.tokens = self.tokens[rows]
        if self.cache is not None:
            self.cache = [(k[rows], v[rows]) for k, v in self.cache]

    def next_logits(self, new_tokens) -> np.ndarray:
        """Feed ``new_tokens`` [B, t] after the tokens so far -> logits of every new position [B, t, V]."""
        new_tokens = np.asarray(new_tokens, dtype=np.int64)
        self.tokens = np.concatenate([self.tokens, new_tokens], axis=1)
        if self.use_cache:
            start, fed = self.tokens.shape[1] - new_tokens.shape[1], new_tokens
        else:
            start, fed, self.cache = 0, self.tokens, None
        logits = self.model.decode(fed, start, self)
        return logits[:, -new_tokens.shape[1]:]


class T5ForConditionalGeneration:
    """``model(input_ids, decoder_input_ids, attention_mask)`` -> float32 logits [B, T_dec, V];
    ``model.generate(...)`` as in ``tfao.kernels.generation``."""

    def __init__(self, config: T5Config, weights: Weights, generation_defaults: dict | None = None,
                 prepared: ops.PreparedStore | None = None):
        self.config = config
        embedding = _embedding(weights, config)
        self.encoder = T5Encoder(config, weights, embedding, prepared)
        self.decoder = _Stack(weights.pp("decoder"), config, True, prepared)
        self.embedding = embedding
        untied = weights.has("lm_head.weight")  # v1.1 / flan; v1.0 files may hold only shared.weight
        self.lm_head = ops.Linear(weights.get("lm_head.weight", embedding.shape) if untied else embedding,
                                  prepared=prepared)
        self.generation_defaults = dict(generation_defaults or {})

    def nbytes(self) -> int:
        return self.embedding.nbytes + self.encoder.stack.nbytes() + self.decoder.nbytes() + self.lm_head.nbytes()

    def start(self, input_ids, attention_mask=None, mode: str | None = None, use_cache: bool = True) -> DecoderState:
        """Encode a batch once and return the state that decodes it."""
        mode = ops.resolve_mode(mode)
        input_ids, keep = _ids_and_mask(input_ids, attention_mask)
        return DecoderState(self, self.encoder(input_ids, keep, mode=mode), keep, mode, use_cache)

    def decode(self, tokens: np.ndarray, start: int, state: DecoderState) -> np.ndarray:
        """Decoder positions start..start+t-1 for ``tokens`` [B, t], earlier ones in ``state.cache`` -> [B, t, V]."""
        mode = state.mode
        length = tokens.shape[1]
        total = start + length
        bias = self.decoder.position_bias(start, length, total)  # [1, nh, t, total]
        causal = (np.arange(total)[None, :] <= np.arange(start, total)[:, None])[None, None]  # [1, 1, t, total]
        x = self.embedding[tokens]  # [B, t, D]
        cache = []
        for i, block in enumerate(self.decoder.blocks):
            h = block.self_norm(x, mode)
            keys, values = block.self_attention.keys_values(h, mode)
            if state.cache is not None:
                past_keys, past_values = state.cache[i]
                keys, values = np.concatenate([past_keys, keys], axis=2), np.concatenate([past_values, values], axis=2)
            cache.append((keys, values))
            x = x + block.self_attention(h, keys, values, bias, causal, mode)
            cross_keys, cross_values = state.cross[i]
            x = x + block.cross_attention(block.cross_norm(x, mode), cross_keys, cross_values, None,
                                          state.cross_visible, mode)
            x = x + block.ff(block.ff_norm(x, mode), mode)
        if state.use_cache:
            state.cache = cache
        x = self.decoder.final_norm(x, mode)
        if self.config.scale_decoder_outputs:
            x = x * np.float32(self.config.d_model ** -0.5)
        return self.lm_head(x, mode=mode)  # [B, t, V]

    def __call__(self, input_ids, decoder_input_ids, attention_mask=None, mode: str | None = None) -> np.ndarray:
        state = self.start(input_ids, attention_mask, mode=mode)
        decoder_input_ids = np.asarray(decoder_input_ids, dtype=np.int64)
        if decoder_input_ids.ndim == 1:
            decoder_input_ids = decoder_input_ids[None, :]  # [1, T]
        return state.next_logits(decoder_input_ids)

    def generate(self, input_ids, attention_mask=None, mode: str | None = None, use_cache: bool = True,
                 decoder_prefix=(), **options) -> np.ndarray:
        """Generated ids [B * num_return_sequences, L], decoder start token first (see ``generation``)."""
        input_ids, keep = _ids_and_mask(input_ids, attention_mask)
        config = generation.settings(self.generation_defaults, self.config, options)
        if 1 + len(decoder_prefix) + config.max_new_tokens > MAX_KEYS:
            raise ValueError(f"max_new_tokens {config.max_new_tokens} (after {len(decoder_prefix) + 1} decoder "
                             f"tokens) exceeds T5's attention length bound {MAX_KEYS}")
        prompt_keys = [row[mask].tobytes() for row, mask in zip(input_ids, keep)]
        state = self.start(input_ids, keep, mode=mode, use_cache=use_cache)
        return generation.generate(state, config, prompt_keys, decoder_prefix)


class T5EncoderModel:
    """``model(input_ids, attention_mask)`` -> the encoder's last hidden state, float32 [B, S, D]."""

    def __init__(self, config: T5Config, weights: Weights, prepared: ops.PreparedStore | None = None):
        self.config = config
        self.encoder = T5Encoder(config, weights, _embedding(weights, config), prepared)

    def nbytes(self) -> int:
        return self.encoder.embedding.nbytes + self.encoder.stack.nbytes()

    def __call__(self, input_ids, attention_mask=None, mode: str | None = None) -> np.ndarray:
        return self.encoder(input_ids, attention_mask, mode=mode)


def _linear(weights: Weights, name: str, shape: tuple[int, int], prepared) -> ops.Linear:
    return ops.Linear(weights.get(f"{name}.weight", shape), prepared=prepared)  # T5's dense layers have no bias


def _embedding(weights: Weights, config: T5Config) -> np.ndarray:
    """The shared token embedding (older exports may only name the encoder's copy)."""
    name = "shared.weight" if weights.has("shared.weight") or not weights.has("encoder.embed_tokens.weight") \
        else "encoder.embed_tokens.weight"
    return weights.get(name, (config.vocab_size, config.d_model))


def _ids_and_mask(input_ids, attention_mask) -> tuple[np.ndarray, np.ndarray]:
    input_ids = np.asarray(input_ids, dtype=np.int64)
    if input_ids.ndim == 1:
        input_ids = input_ids[None, :]  # [1, S]
    if attention_mask is None:
        return input_ids, np.ones(input_ids.shape, dtype=bool)
    return input_ids, np.asarray(attention_mask).reshape(input_ids.shape) != 0
