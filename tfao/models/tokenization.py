"""Tokenizer loading shared by the model families: ``tokenizers.Tokenizer`` with dynamic padding.

Checkpoints often pin fixed padding in tokenizer.json (all-MiniLM-L6-v2 pads every input to 128);
models here pad each batch to its longest sequence instead and truncate to the model's maximum length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer


@dataclass
class Encoding:
    """A padded batch: int64 arrays [B, T]."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray


def _from_vocab(vocab_text: str, lowercase: bool) -> Tokenizer:
    vocab = {token: index for index, token in enumerate(vocab_text.splitlines())}
    return BertWordPieceTokenizer(vocab, lowercase=lowercase)._tokenizer


def load_tokenizer(source, max_length: int | None = None, lowercase: bool = True) -> Tokenizer:
    """A tokenizer from tokenizer.json (bytes, text or path), a vocab.txt path, or a folder holding either.

    ``lowercase`` applies to vocab.txt only (tokenizer.json carries its own normaliser).
    """
    if isinstance(source, (bytes, bytearray)):
        text = bytes(source).decode("utf-8")
        tokenizer = Tokenizer.from_str(text) if text.lstrip().startswith("{") else _from_vocab(text, lowercase)
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "tokenizer.json" if (path / "tokenizer.json").exists() else path / "vocab.txt"
        if path.suffix == ".json":
            tokenizer = Tokenizer.from_file(str(path))
        else:
            tokenizer = _from_vocab(path.read_text(encoding="utf-8"), lowercase)
    return configure(tokenizer, max_length)


def configure(tokenizer: Tokenizer, max_length: int | None) -> Tokenizer:
    """Dynamic padding with the tokenizer's own pad token, truncation to ``max_length`` if given."""
    pinned = tokenizer.padding or {}
    pad_token = pinned.get("pad_token") or ("[PAD]" if tokenizer.token_to_id("[PAD]") is not None else "<pad>")
    pad_id = pinned.get("pad_id", tokenizer.token_to_id(pad_token) or 0)
    tokenizer.no_padding()
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    tokenizer.no_truncation()
    if max_length is not None:
        tokenizer.enable_truncation(max_length)
    return tokenizer


def encode(tokenizer: Tokenizer, texts, pairs=None) -> Encoding:
    """Encode a list of texts (or of (text, text_pair) when ``pairs`` is given) into one padded batch."""
    inputs = list(texts) if pairs is None else list(zip(texts, pairs))
    encodings = tokenizer.encode_batch(inputs)
    return Encoding(
        input_ids=np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(inputs), -1),
        attention_mask=np.array([e.attention_mask for e in encodings], dtype=np.int64).reshape(len(inputs), -1),
        token_type_ids=np.array([e.type_ids for e in encodings], dtype=np.int64).reshape(len(inputs), -1),
    )

