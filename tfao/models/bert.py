"""The BERT family: sentence embeddings from a sentence-transformers (or plain Hugging Face BERT) source.

One reader of the layout, for folders and weave manifests alike: modules.json lists the modules (the
transformer, a Pooling module whose ``1_Pooling/config.json`` picks mean, CLS or max, and optionally
Normalize); ``sentence_bert_config.json`` gives the truncation length; ``tokenizer_config.json``'s
``do_lower_case`` applies to a vocab.txt tokenizer. A source without modules.json is read as a
mean-pooled, L2-normalised sentence encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from tokenizers import Tokenizer

from tfao.kernels import bert as bert_kernel, ops
from tfao.kernels.weights import Weights
from tfao.models.sources import ModelSource, SourceError, open_source
from tfao.models.tokenization import configure, encode, load_tokenizer

POOLINGS = ("mean", "cls", "max")
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max"}
BATCH_SIZE = 32


def pooling_from_config(pooling_config: dict) -> str:
    """The single pooling a sentence-transformers Pooling config enables."""
    enabled = [name for flag, name in _POOLING_FLAGS.items() if pooling_config.get(flag)]
    others = [k for k, v in pooling_config.items() if k.startswith("pooling_mode_") and v and k not in _POOLING_FLAGS]
    if len(enabled) != 1 or others:
        raise ValueError("unsupported pooling configuration (need exactly one of mean, cls, max)")
    return enabled[0]


@dataclass(frozen=True)
class SentenceSettings:
    """How token states become one embedding: pooling, normalisation and the truncation length."""

    pooling: str = "mean"
    normalize: bool = True
    max_seq_length: int | None = None

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if not isinstance(self.normalize, bool):
            raise ValueError("normalize_embeddings must be a boolean")
        if self.max_seq_length is not None and (not isinstance(self.max_seq_length, int)
                                                or isinstance(self.max_seq_length, bool) or self.max_seq_length < 2):
            raise ValueError("max_seq_length must be an integer of at least 2")

    @classmethod
    def from_source(cls, source: ModelSource) -> "SentenceSettings":
        pooling, normalize = "mean", True
        modules = source.json_or("modules.json", None)
        if modules is not None:
            if not isinstance(modules, list):
                raise SourceError("modules.json is not a list of modules")
            normalize = False
            for module in modules:
                kind = str(module.get("type", "")) if isinstance(module, dict) else ""
                if kind.endswith("Pooling"):
                    pooling = pooling_from_config(source.json(f"{module.get('path', '1_Pooling')}/config.json"))
                elif kind.endswith("Normalize"):
                    normalize = True
        elif source.has("1_Pooling/config.json"):
            pooling = pooling_from_config(source.json("1_Pooling/config.json"))
        max_seq_length = source.json_or("sentence_bert_config.json", {}).get("max_seq_length")
        return cls(pooling, normalize, max_seq_length)


def tokenizer_from_source(source: ModelSource) -> Tokenizer:
    """tokenizer.json, else vocab.txt (lower-cased unless tokenizer_config.json says otherwise)."""
    lowercase = bool(source.json_or("tokenizer_config.json", {}).get("do_lower_case", True))
    name = "tokenizer.json" if source.has("tokenizer.json") or not source.has("vocab.txt") else "vocab.txt"
    try:
        return load_tokenizer(source.read(name), lowercase=lowercase)
    except SourceError:
        raise
    except Exception:  # the tokenizers library's parse errors: fixed wording, the same on every node
        raise ValueError(f"cannot load the model: {name} is not a valid tokenizer") from None


class BertModel(bert_kernel.BertModel):
    """BERT's last hidden state (see ``tfao.kernels.bert``), loadable from any model source."""

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None) -> "BertModel":
        """From a Hugging Face folder or a model manifest id in the weave of the node home ``home``."""
        return cls.from_source(open_source(model, home), prepared)

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None) -> "BertModel":
        config = source.json("config.json")
        try:
            weights = Weights.load(source.local("model.safetensors"))
        except SourceError:
            raise
        except ValueError as exc:  # WeightError: name what is wrong with the file
            raise ValueError(f"cannot load the model: {exc}") from None
        return cls(config, weights, prepared)


class SentenceEncoder:
    """Tokenize, encode, pool and (optionally) L2-normalise: texts -> float32 [N, H]."""

    def __init__(self, model: bert_kernel.BertModel, tokenizer: Tokenizer, settings: SentenceSettings = SentenceSettings()):
        self.model = model
        self.settings = settings
        self._tokenizers: dict[int, Tokenizer] = {}
        self._tokenizer_json = tokenizer.to_str()
        self.tokenizer = self.tokenizer_for(settings.max_seq_length)

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None) -> "SentenceEncoder":
        return cls(BertModel.from_source(source, prepared), tokenizer_from_source(source), SentenceSettings.from_source(source))

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None) -> "SentenceEncoder":
        return cls.from_source(open_source(model, home), prepared)

    @property
    def dimension(self) -> int:
        return self.model.config["hidden_size"]

    def nbytes(self) -> int:
        return self.model.nbytes()

    def with_settings(self, **changes) -> SentenceSettings:
        """This encoder's settings with some replaced (None: keep)."""
        return replace(self.settings, **{k: v for k, v in changes.items() if v is not None})

    def tokenizer_for(self, max_seq_length: int | None) -> Tokenizer:
        """The tokenizer truncating to ``max_seq_length`` (capped by the model's positions)."""
        limit = self.model.max_positions if max_seq_length is None else min(max_seq_length, self.model.max_positions)
        if limit not in self._tokenizers:
            self._tokenizers[limit] = configure(Tokenizer.from_str(self._tokenizer_json), limit)
        return self._tokenizers[limit]

    def _encode_batch(self, tokenizer: Tokenizer, texts: list[str], settings: SentenceSettings, mode: str) -> np.ndarray:
        batch = encode(tokenizer, texts)
        hidden = self.model(batch.input_ids, batch.attention_mask, batch.token_type_ids, mode=mode)  # [B, T, H]
        if settings.pooling == "mean":
            pooled = ops.mean_pool(hidden, batch.attention_mask, mode=mode)  # [B, H]
        elif settings.pooling == "max":
            pooled = ops.max_pool(hidden, batch.attention_mask)
        else:
            pooled = hidden[:, 0]
        return ops.l2_normalize(pooled, mode=mode) if settings.normalize else pooled

    def encode(self, texts: list[str], mode: str | None = None, settings: SentenceSettings | None = None) -> np.ndarray:
        """Embeddings [N, H]; texts are batched by length (exact-mode results do not depend on batching)."""
        mode = ops.resolve_mode(mode)
        settings = settings or self.settings
        tokenizer = self.tokenizer_for(settings.max_seq_length)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        lengths = self.token_counts(texts, settings) if len(texts) > BATCH_SIZE else [0] * len(texts)
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start:start + BATCH_SIZE]
            out[rows] = self._encode_batch(tokenizer, [texts[i] for i in rows], settings, mode)
        return out

    def token_counts(self, texts: list[str], settings: SentenceSettings | None = None) -> list[int]:
        tokenizer = self.tokenizer_for((settings or self.settings).max_seq_length)
        return [len(e.ids) for e in tokenizer.encode_batch(list(texts))]

    def multiply_adds(self, texts: list[str], settings: SentenceSettings | None = None) -> int:
        """The deterministic cost of embedding ``texts``: each text's own forward pass (never its padding)."""
        config = self.model.config
        hidden, inner = config["hidden_size"], config["intermediate_size"]
        per_token = config["num_hidden_layers"] * (4 * hidden * hidden + 2 * hidden * inner)
        attention = config["num_hidden_layers"] * 2 * hidden
        return sum(t * per_token + t * t * attention for t in self.token_counts(texts, settings))


class FeatureExtractionPipeline:
    """Sentence embeddings: one string -> float32 [H]; a list of strings -> float32 [N, H]."""

    def __init__(self, encoder: SentenceEncoder, mode: str | None = None):
        self.encoder = encoder
        self.mode = mode

    def __call__(self, inputs: str | list[str]) -> np.ndarray:
        if isinstance(inputs, str):
            return self.encoder.encode([inputs], mode=self.mode)[0]
        return self.encoder.encode(list(inputs), mode=self.mode)


def detect(source: ModelSource) -> bool:
    """A BERT encoder: config.json's model_type (sentence-transformers folders hold one too)."""
    return source.has("config.json") and source.json("config.json").get("model_type") == "bert"


# ---------------------------------------------------------------------------------- Lua functions


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
        return ""
    if isinstance(value, list):
        return [_text(item, "each prompt") for item in value]
    if isinstance(value, dict) and not value:
        return []  # an empty Lua table
    return _text(value, "prompt")


def encode_text_inputs(opts: dict) -> dict:
    """What changes ``encode_text``'s output, validated: the prompt(s) and the settings overrides."""
    pooling = opts.get("pooling")
    inputs = {
        "prompt": _prompts(opts.get("prompt")),
        "pooling": None if pooling is None else _text(pooling, "pooling"),
        "normalize": opts.get("normalize_embeddings"),
        "max_seq_length": opts.get("max_seq_length"),
    }
    SentenceSettings(inputs["pooling"] or "mean", True if inputs["normalize"] is None else inputs["normalize"],
                     inputs["max_seq_length"])  # validates the overrides before any lookup
    return inputs


def encode_text(encoder: SentenceEncoder, inputs: dict, mode: str) -> tuple[np.ndarray, int]:
    """(embeddings float32 [H] for one prompt or [N, H] for a list, multiply-adds)."""
    settings = encoder.with_settings(pooling=inputs["pooling"], normalize=inputs["normalize"],
                                     max_seq_length=inputs["max_seq_length"])
    prompts = inputs["prompt"]
    texts = [prompts] if isinstance(prompts, str) else prompts
    if not texts:
        return np.zeros((0, encoder.dimension), np.float32), 0
    vectors = encoder.encode(texts, mode=mode, settings=settings)
    return (vectors[0] if isinstance(prompts, str) else vectors), encoder.multiply_adds(texts, settings)


def encode_text_reply(vectors: np.ndarray, opts: dict) -> list:
    """What Lua gets: the embeddings, and ``{model_id = opts.model_id, prompt = opts.prompt}``."""
    model_id = opts.get("model_id")
    return [vectors, {"model_id": None if model_id is None else _text(model_id, "model_id"), "prompt": opts.get("prompt")}]
