"""The CLIP family: text embeddings from a CLIP checkpoint, and CLIP's BPE tokenizer (Stable Diffusion's too).

A source with a CLIP config.json: the full ``CLIPModel`` (model_type ``clip``, openai/clip-vit-base-patch32's
layout; its vision tower is never read), ``CLIPTextModelWithProjection`` or ``CLIPTextModel`` (model_type
``clip_text_model``). With a ``text_projection`` the embedding is ``CLIPModel.get_text_features``: the projected
pooled output, what sentence-transformers' clip-ViT-B-32 returns for text (its folders load too); without
one, the pooled output.
Embeddings are unnormalised unless asked (``normalize_embeddings``). The tokenizer is tokenizer.json, or
vocab.json and merges.txt.
"""

from __future__ import annotations

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from tfao.kernels import ops
from tfao.kernels.clip import CLIPTextModel, CLIPTextModelWithProjection, text_config
from tfao.kernels.networks import linear_layers
from tfao.models.bert import _prompts, encode_text_reply  # Lua's texts and reply, as BERT's
from tfao.models.sources import ModelSource, SourceError, load_weights, open_source

CLIP_MAX_LENGTH = 77
MODEL_TYPES = ("clip", "clip_text_model", "clip_text_model_with_projection")
# transformers' CLIPTextConfig defaults, for configs saved with only the fields that differ from them
TEXT_CONFIG_DEFAULTS = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, projection_dim=512,
                            num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407)
BATCH_SIZE = 32
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer_from_vocab(vocab: dict, merges: list[str]) -> Tokenizer:
    """CLIP's byte-level BPE from vocab.json and merges.txt (the files the SD1.5 folder ships)."""
    pairs = [tuple(line.split()) for line in merges if line and not line.startswith("#version")]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs, unk_token=_EOS, end_of_word_suffix="</w>",
                                     continuing_subword_prefix="", fuse_unk=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.post_processor = processors.RobertaProcessing((_EOS, vocab[_EOS]), (_BOS, vocab[_BOS]), add_prefix_space=False, trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def load_clip_tokenizer(folder, max_length: int = CLIP_MAX_LENGTH, pad_to_max_length: bool = True) -> Tokenizer:
    """The tokenizer of a folder or source (tokenizer.json, or vocab.json and merges.txt), truncating to
    ``max_length`` tokens (or the config's smaller model_max_length) and padding to that length as SD feeds
    CLIP, or with ``pad_to_max_length=False`` to each batch's longest."""
    source = folder if isinstance(folder, ModelSource) else ModelSource.from_folder(folder)
    if source.has("tokenizer.json"):
        try:
            tokenizer = Tokenizer.from_str(source.read("tokenizer.json").decode("utf-8"))
        except Exception:  # the tokenizers library's parse errors: fixed wording, the same on every node
            raise ValueError("cannot load the model: tokenizer.json is not a valid tokenizer") from None
    elif source.has("vocab.json") and source.has("merges.txt"):
        merges = source.read("merges.txt").decode("utf-8").splitlines()
        tokenizer = clip_tokenizer_from_vocab(source.json("vocab.json"), merges)
    else:
        raise SourceError(f"{source.origin} has no CLIP tokenizer ({source.prefix}tokenizer.json, or vocab.json and merges.txt)")
    settings = source.json_or("tokenizer_config.json", {})
    pad_token = settings.get("pad_token") or _EOS
    pad_token = pad_token["content"] if isinstance(pad_token, dict) else pad_token
    length = min(int(settings.get("model_max_length") or max_length), max_length)
    tokenizer.no_padding()
    tokenizer.enable_padding(length=length if pad_to_max_length else None, pad_id=tokenizer.token_to_id(pad_token),
                             pad_token=pad_token)
    tokenizer.enable_truncation(length)  # longer prompts keep their first length - 2 tokens, as diffusers does
    return tokenizer


def checkpoint(source: ModelSource) -> ModelSource:
    """Where the checkpoint's files are: the source itself, or the module folder a sentence-transformers
    modules.json names for its CLIPModel module (``0_CLIPModel/`` in clip-ViT-B-32)."""
    modules = None if source.has("config.json") else source.json_or("modules.json", None)
    for module in modules if isinstance(modules, list) else []:
        if isinstance(module, dict) and str(module.get("type", "")).endswith("CLIPModel") and module.get("path"):
            return source.sub(str(module["path"]))
    return source


def detect(source: ModelSource) -> bool:
    """A CLIP checkpoint: config.json's model_type (of a sentence-transformers model's CLIPModel module too)."""
    source = checkpoint(source)
    return source.has("config.json") and source.json("config.json").get("model_type") in MODEL_TYPES


class CLIPTextEmbedder:
    """Texts -> CLIP text embeddings float32 [N, D]: the projected pooled output when the checkpoint has a
    ``text_projection`` (D = projection_dim), else the pooled output (D = hidden_size)."""

    def __init__(self, model: CLIPTextModel, tokenizer: Tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.projected = isinstance(model, CLIPTextModelWithProjection)
        self.dimension = model.config["projection_dim"] if self.projected else model.hidden
        # multiply-adds per token: every linear weight once (the projection included, a bound)
        self.weights_per_token = sum(layer.weight.size for layer in linear_layers(model))

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None) -> "CLIPTextEmbedder":
        source = checkpoint(source)
        if not detect(source):
            raise SourceError(f"{source.origin} is not a CLIP model (config.json's model_type is not one of {', '.join(MODEL_TYPES)})")
        config, weights = TEXT_CONFIG_DEFAULTS | text_config(source.json("config.json")), load_weights(source)
        model_class = CLIPTextModelWithProjection if weights.has("text_projection.weight") else CLIPTextModel
        model = model_class(config, weights, prepared)
        return cls(model, load_clip_tokenizer(source, model.max_positions, pad_to_max_length=False))

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None) -> "CLIPTextEmbedder":
        """From a model folder or a model manifest id in the weave of the node home ``home``."""
        return cls.from_source(open_source(model, home), prepared)

    def nbytes(self) -> int:
        return self.model.nbytes()

    def _encode_batch(self, texts: list[str], mode: str) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)  # [B, T]
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)  # [B, T]
        outputs = self.model(ids, mask, mode=mode)
        return outputs[0] if self.projected else outputs[1]  # [B, D]

    def encode(self, texts: list[str], mode: str | None = None, normalize: bool = False) -> np.ndarray:
        """Embeddings [N, D] (exact-mode bits do not depend on how the texts are batched or padded)."""
        mode = ops.resolve_mode(mode)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), BATCH_SIZE):
            out[start:start + BATCH_SIZE] = self._encode_batch(texts[start:start + BATCH_SIZE], mode)
        return ops.l2_normalize(out, mode=mode) if normalize else out

    def multiply_adds(self, texts: list[str]) -> int:
        """The deterministic cost of embedding ``texts``: each text's own tokens (never its padding)."""
        attention = len(self.model.layers) * 2 * self.model.hidden
        counts = [sum(e.attention_mask) for e in self.tokenizer.encode_batch(list(texts))]
        return sum(t * self.weights_per_token + t * t * attention for t in counts)


class FeatureExtractionPipeline:
    """CLIP text embeddings: one string -> float32 [D]; a list of strings -> float32 [N, D]."""

    def __init__(self, embedder: CLIPTextEmbedder, mode: str | None = None):
        self.embedder, self.mode = embedder, mode

    def __call__(self, inputs: str | list[str], normalize_embeddings: bool = False) -> np.ndarray:
        if isinstance(inputs, str):
            return self.embedder.encode([inputs], mode=self.mode, normalize=normalize_embeddings)[0]
        return self.embedder.encode(list(inputs), mode=self.mode, normalize=normalize_embeddings)


# ---------------------------------------------------------------------------------- Lua functions
# require("transformers").clip.encode_text{model=, tokenizer=, config=, prompt=, normalize_embeddings=, model_id=}


def encode_text_inputs(opts: dict) -> dict:
    """What changes ``encode_text``'s output, validated: the prompt(s) and whether to normalise."""
    normalize = opts.get("normalize_embeddings", False)
    if not isinstance(normalize, bool):
        raise ValueError("normalize_embeddings must be a boolean")
    return {"prompt": _prompts(opts.get("prompt")), "normalize": normalize}


def encode_text(embedder: CLIPTextEmbedder, inputs: dict, mode: str) -> tuple[np.ndarray, int]:
    """(embeddings float32 [D] for one prompt or [N, D] for a list, multiply-adds)."""
    prompts = inputs["prompt"]
    texts = [prompts] if isinstance(prompts, str) else prompts
    if not texts:
        return np.zeros((0, embedder.dimension), np.float32), 0
    vectors = embedder.encode(texts, mode=mode, normalize=inputs["normalize"])
    return (vectors[0] if isinstance(prompts, str) else vectors), embedder.multiply_adds(texts)
