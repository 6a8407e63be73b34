"""T5 as text in, text out: the tokenizer, the encoder-decoder and generation, and the pipelines over them
(``text2text-generation``, ``summarization``, ``translation_xx_to_yy``, ``feature-extraction``).

The tokenizer is tokenizer.json (Unigram with a Metaspace pre-tokenizer and SentencePiece's precompiled
normaliser) read by ``tokenizers``; a folder with only ``spiece.model`` is refused with the way to convert it.
Pipelines follow transformers': the task's ``task_specific_params`` in config.json give the input prefix
("summarize: ", "translate English to German: ") and generation defaults, results have its shapes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tfao.kernels import ops
from tfao.kernels.t5 import MAX_KEYS, T5Config, T5EncoderModel, T5ForConditionalGeneration, checkpoint_files
from tfao.kernels.weights import Weights
from tfao.models.tokenization import configure, encode

SPIECE_ONLY = ("{where} has spiece.model but no tokenizer.json; convert it once with transformers: "
               "AutoTokenizer.from_pretrained(folder).save_pretrained(folder) writes tokenizer.json")
TRANSLATION_TASK = re.compile(r"^translation_([a-z]{2,3})_to_([a-z]{2,3})$")
# transformers' clean_up_tokenization: no space before punctuation and English contractions
_CLEAN_UPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
              (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def load_t5_tokenizer(folder: Path) -> Tokenizer:
    """tokenizer.json from a model folder, with dynamic padding; a clear error for spiece.model alone."""
    path = folder / "tokenizer.json"
    if not path.exists():
        if (folder / "spiece.model").exists():
            raise ValueError(SPIECE_ONLY.format(where=folder.name))
        raise ValueError(f"{folder.name} has no tokenizer.json")
    return tokenizer_from_json(path.read_bytes())


def tokenizer_from_json(data: bytes, where: str = "the tokenizer") -> Tokenizer:
    """A tokenizer from tokenizer.json bytes; anything else (a SentencePiece model, say) is a clear error."""
    if not data.lstrip().startswith(b"{"):
        raise ValueError(f"{where} is not a tokenizer.json (for a SentencePiece spiece.model: "
                         + SPIECE_ONLY.split("; ", 1)[1] + ")")
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers' parse errors: name the input, keep the reason
        raise ValueError(f"{where} is not a valid tokenizer.json: {exc}") from None
    return configure(tokenizer, MAX_KEYS)


@dataclass
class T5Text:
    """A T5 checkpoint with its tokenizer: prompts to generated texts, or to pooled encoder embeddings."""

    model: T5ForConditionalGeneration | T5EncoderModel
    tokenizer: Tokenizer
    config: dict = field(default_factory=dict)
    clean_up_spaces: bool = False

    @classmethod
    def from_folder(cls, folder, encoder_only: bool = False) -> "T5Text":
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        files = {path.name: path for path in folder.iterdir()}
        generation, tokenizer_config = (json.loads(files[name].read_text()) if name in files else {}
                                        for name in ("generation_config.json", "tokenizer_config.json"))
        return cls.from_parts(config, Weights.load(checkpoint_files(folder)), load_t5_tokenizer(folder), generation,
                              tokenizer_config, encoder_only)

    @classmethod
    def from_parts(cls, config: dict, weights: Weights, tokenizer: Tokenizer, generation_config: dict | None = None,
                   tokenizer_config: dict | None = None, encoder_only: bool = False) -> "T5Text":
        t5_config = T5Config.from_dict(config)
        encoder_only = encoder_only or not weights.has("decoder.final_layer_norm.weight")
        model = T5EncoderModel(t5_config, weights) if encoder_only else \
            T5ForConditionalGeneration(t5_config, weights, generation_config)
        clean_up = bool((tokenizer_config or {}).get("clean_up_tokenization_spaces", False))
        return cls(model, tokenizer, config, clean_up)

    @property
    def can_generate(self) -> bool:
        return isinstance(self.model, T5ForConditionalGeneration)

    def task_params(self, task: str) -> dict:
        return dict((self.config.get("task_specific_params") or {}).get(task) or {})

    def generate_ids(self, texts: list[str], mode: str | None = None, **options) -> np.ndarray:
        if not self.can_generate:
            raise ValueError("this T5 checkpoint has no decoder (an encoder-only model): it can only embed")
        batch = encode(self.tokenizer, texts)
        return self.model.generate(batch.input_ids, batch.attention_mask, mode=mode, **options)

    def decode(self, ids: np.ndarray) -> list[str]:
        texts = self.tokenizer.decode_batch(np.asarray(ids).tolist(), skip_special_tokens=True)
        if self.clean_up_spaces:
            for before, after in _CLEAN_UPS:
                texts = [text.replace(before, after) for text in texts]
        return texts

    def generate(self, texts: list[str], mode: str | None = None, **options) -> list[str]:
        """One text per prompt and returned sequence, in order."""
        return self.decode(self.generate_ids(texts, mode=mode, **options))

    def embed(self, texts: list[str], normalize: bool = False, mode: str | None = None) -> np.ndarray:
        """Mean of the encoder's last hidden state over each prompt's tokens (sentence-t5) -> float32 [N, D]."""
        mode = ops.resolve_mode(mode)
        batch = encode(self.tokenizer, texts)
        hidden = self.model.encoder(batch.input_ids, batch.attention_mask, mode=mode)  # [N, S, D]
        pooled = ops.mean_pool(hidden, batch.attention_mask, mode=mode)  # [N, D]
        return ops.l2_normalize(pooled, mode=mode) if normalize else pooled


# generation options task_specific_params may set (min_length and max_length count the decoder start token)
_TASK_OPTIONS = ("max_length", "min_length", "num_beams", "length_penalty", "no_repeat_ngram_size", "early_stopping",
                 "max_new_tokens", "min_new_tokens", "repetition_penalty")


def task_options(params: dict, options: dict) -> dict:
    """Generation options for one call: the task's defaults, then the caller's."""
    merged = {key: params[key] for key in _TASK_OPTIONS if key in params}
    if "max_new_tokens" in options:
        merged.pop("max_length", None)
    if "min_new_tokens" in options:
        merged.pop("min_length", None)
    merged.update(options)
    if "min_length" in merged:
        merged.setdefault("min_new_tokens", max(int(merged["min_length"]) - 1, 0))
        del merged["min_length"]
    return merged


class Text2TextPipeline:
    """transformers' text2text pipelines: a string -> ``[{KEY: text}, ...]`` (one per returned sequence);
    a list of strings -> one such entry per string (the dict itself when one sequence is returned)."""

    def __init__(self, text_model: T5Text, task: str, mode: str | None = None):
        if not text_model.can_generate:
            raise ValueError(f"{task} needs a T5 with a decoder; this checkpoint is encoder-only")
        self.text_model, self.task, self.mode = text_model, task, mode
        self.key = "summary_text" if task == "summarization" else \
            "translation_text" if TRANSLATION_TASK.match(task) else "generated_text"
        self.params = text_model.task_params(task)

    def __call__(self, inputs: str | list[str], **options):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        prefix = self.params.get("prefix", "")
        options = task_options(self.params, options)
        outputs = self.text_model.generate([prefix + text for text in texts], mode=self.mode, **options) if texts \
            else []
        copies = options.get("num_return_sequences", 1)
        results = [[{self.key: outputs[i * copies + j]} for j in range(copies)] for i in range(len(texts))]
        if isinstance(inputs, str):
            return results[0]
        return [result[0] if copies == 1 else result for result in results]


class T5FeatureExtractionPipeline:
    """Sentence embeddings from the encoder: one string -> float32 [D]; a list -> float32 [N, D]."""

    def __init__(self, text_model: T5Text, mode: str | None = None, normalize: bool = False):
        self.text_model, self.mode, self.normalize = text_model, mode, normalize

    def __call__(self, inputs: str | list[str]) -> np.ndarray:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        vectors = self.text_model.embed(texts, normalize=self.normalize, mode=self.mode)
        return vectors[0] if isinstance(inputs, str) else vectors


def is_text2text_task(task: str) -> bool:
    return task in ("text2text-generation", "summarization") or TRANSLATION_TASK.match(task) is not None


def t5_pipeline(task: str, text_model: T5Text, mode: str | None = None, normalize: bool = False):
    if task == "feature-extraction":
        return T5FeatureExtractionPipeline(text_model, mode, normalize)
    if is_text2text_task(task):
        return Text2TextPipeline(text_model, task, mode)
    raise ValueError(f"T5 does not serve task {task!r}")
