"""Sentence-embedding models from a sentence-transformers folder or from blobs, and the model cache.

A sentence-transformers folder lists its modules in modules.json: the transformer itself, a Pooling
module (``1_Pooling/config.json``: mean, CLS or max) and optionally Normalize (which has no folder of its
own). ``sentence_bert_config.json`` gives the truncation length.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tokenizers import Tokenizer

from tfao.kernels import ops
from tfao.kernels.bert import BertModel
from tfao.models.tokenization import configure, encode, load_tokenizer

POOLINGS = ("mean", "cls", "max")
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
BATCH_SIZE = 32


def pooling_from_config(pooling_config: dict) -> str:
    """The single pooling a sentence-transformers Pooling config enables."""
    enabled = [name for flag, name in _POOLING_FLAGS.items() if pooling_config.get(flag)]
    others = [k for k, v in pooling_config.items() if k.startswith("pooling_mode_") and v and k not in _POOLING_FLAGS]
    if len(enabled) != 1 or others:
        raise ValueError(f"unsupported pooling configuration {pooling_config} (need exactly one of mean, cls, max)")
    return enabled[0]


@dataclass
class SentenceEncoder:
    """Tokenize, encode, pool and (optionally) L2-normalise: texts -> float32 [N, H]."""

    model: BertModel
    tokenizer: Tokenizer
    pooling: str = "mean"
    normalize: bool = True

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")

    @classmethod
    def from_folder(cls, folder) -> "SentenceEncoder":
        folder = Path(folder)
        model = BertModel.from_pretrained(folder)
        pooling, normalize = "mean", False
        modules_file = folder / "modules.json"
        if modules_file.exists():
            for module in json.loads(modules_file.read_text()):
                kind = module.get("type", "")
                if kind.endswith("Pooling"):
                    pooling = pooling_from_config(json.loads((folder / module["path"] / "config.json").read_text()))
                elif kind.endswith("Normalize"):
                    normalize = True
        st_config = folder / "sentence_bert_config.json"
        max_seq_length = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
        tokenizer_config = folder / "tokenizer_config.json"
        lowercase = json.loads(tokenizer_config.read_text()).get("do_lower_case", True) if tokenizer_config.exists() else True
        tokenizer = load_tokenizer(folder, lowercase=lowercase)
        return cls.build(model, tokenizer, pooling, normalize, max_seq_length)

    @classmethod
    def from_blobs(cls, weights, tokenizer: bytes, config: bytes | dict, pooling: str = "mean",
                   normalize: bool = True, max_seq_length: int | None = None) -> "SentenceEncoder":
        """From safetensors (bytes or a file path), tokenizer.json (or vocab.txt) bytes and config.json."""
        model = BertModel.from_safetensors(config, weights)
        return cls.build(model, load_tokenizer(tokenizer), pooling, normalize, max_seq_length)

    @classmethod
    def build(cls, model, tokenizer, pooling, normalize, max_seq_length) -> "SentenceEncoder":
        limit = model.max_positions if max_seq_length is None else min(int(max_seq_length), model.max_positions)
        return cls(model, configure(tokenizer, limit), pooling, normalize)

    @property
    def dimension(self) -> int:
        return self.model.config["hidden_size"]

    def _encode_batch(self, texts: list[str], mode: str) -> np.ndarray:
        batch = encode(self.tokenizer, texts)
        hidden = self.model(batch.input_ids, batch.attention_mask, batch.token_type_ids, mode=mode)  # [B, T, H]
        if self.pooling == "mean":
            pooled = ops.mean_pool(hidden, batch.attention_mask, mode=mode)  # [B, H]
        elif self.pooling == "max":
            pooled = ops.max_pool(hidden, batch.attention_mask)
        else:
            pooled = hidden[:, 0]
        return ops.l2_normalize(pooled, mode=mode) if self.normalize else pooled

    def encode(self, texts: list[str], mode: str | None = None) -> np.ndarray:
        """Embeddings [N, H]; texts are batched by length (exact-mode results do not depend on batching)."""
        mode = ops.resolve_mode(mode)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        lengths = [len(e.ids) for e in self.tokenizer.encode_batch(list(texts))] if len(texts) > BATCH_SIZE else [0] * len(texts)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            out[rows] = self._encode_batch([texts[i] for i in rows], mode)
        return out

    def nbytes(self) -> int:
        """Memory held: float32 weights plus each dense layer's float32 and float64 prepared copies."""
        weights = sum(a.nbytes for a in self.model.weights.values())
        return weights + sum(linear.weight_t.nbytes * 3 for linear in self.model.linears.values())


class ModelCache:
    """Loaded models by key, least recently used evicted first once their total size exceeds ``max_bytes``."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, key: str, load: Callable[[], object], size_of: Callable[[object], int]):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key][0]
        value = load()
        size = size_of(value)
        with self._lock:
            self._entries[key] = (value, size)
            self._entries.move_to_end(key)
            while len(self._entries) > 1 and sum(s for _, s in self._entries.values()) > self.max_bytes:
                self._entries.popitem(last=False)
        return value

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def clear(self):
        with self._lock:
            self._entries.clear()


MODEL_CACHE = ModelCache(int(os.environ.get("TFAO_MODEL_CACHE_BYTES", 2 * 2**30)))


def cached_sentence_encoder(key: str, load: Callable[[], SentenceEncoder]) -> SentenceEncoder:
    return MODEL_CACHE.get_or_load(key, load, SentenceEncoder.nbytes)
