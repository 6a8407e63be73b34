"""The T5 family: text in, text out (T5ForConditionalGeneration with its tokenizer and generation), and
encoder embeddings (T5EncoderModel, mean-pooled), from a Hugging Face folder or a weave manifest alike.

The tokenizer is tokenizer.json (Unigram with a Metaspace pre-tokenizer and SentencePiece's precompiled
normaliser) read by ``tokenizers``; a source with only ``spiece.model`` is refused with the way to convert
it. Pipelines follow transformers': the task's ``task_specific_params`` in config.json give the input
prefix ("summarize: ", "translate English to German: ") and generation defaults; results have its shapes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from tokenizers import Tokenizer

from tfao.kernels import generation, ops, t5 as t5_kernel
from tfao.models.bert import _prompts, _text  # Lua's strings and lists of strings, read as BERT reads them
from tfao.models.sources import ModelSource, SourceError, load_weights, open_source
from tfao.models.tokenization import configure, encode

SPIECE_ONLY = ("the model has spiece.model but no tokenizer.json; convert it once with transformers: "
               "AutoTokenizer.from_pretrained(folder).save_pretrained(folder) writes tokenizer.json")
TRANSLATION = re.compile(r"^translation_([a-z]{2,3})_to_([a-z]{2,3})$")
TEXT_TASKS = ("text2text-generation", "summarization", "translation_xx_to_yy")
_T5_LANGUAGES = {"en": "English", "de": "German", "fr": "French", "ro": "Romanian"}  # the pairs T5 was trained on
# transformers' clean_up_tokenization: no space before punctuation and English contractions
_CLEAN_UPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
              (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def detect(source: ModelSource) -> bool:
    return source.has("config.json") and source.json("config.json").get("model_type") == "t5"


def tokenizer_from_json(data: bytes) -> Tokenizer:
    """tokenizer.json bytes with dynamic padding; anything else (a SentencePiece model, say) is a clear error."""
    if not data.lstrip().startswith(b"{"):
        raise ValueError("the tokenizer is not a tokenizer.json (for a SentencePiece spiece.model, "
                         + SPIECE_ONLY.split("; ", 1)[1] + ")")
    try:
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    except Exception:  # the tokenizers library's parse errors: fixed wording, the same on every node
        raise ValueError("cannot load the model: tokenizer.json is not a valid tokenizer") from None
    return configure(tokenizer, t5_kernel.MAX_KEYS)


def tokenizer_from_source(source: ModelSource) -> Tokenizer:
    if not source.has("tokenizer.json") and source.has("spiece.model"):
        raise SourceError(SPIECE_ONLY)
    return tokenizer_from_json(source.read("tokenizer.json"))


class T5ForConditionalGeneration(t5_kernel.T5ForConditionalGeneration):
    """The encoder-decoder (see ``tfao.kernels.t5``), loadable from any model source."""

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None):
        """From a Hugging Face folder or a model manifest id in the weave of the node home ``home``."""
        return cls.from_source(open_source(model, home), prepared)

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None):
        config = t5_kernel.T5Config.from_dict(source.json("config.json"))
        return cls(config, load_weights(source), source.json_or("generation_config.json", {}), prepared)


class T5EncoderModel(t5_kernel.T5EncoderModel):
    """The encoder alone (T5EncoderModel, sentence-t5, diffusion text encoders), from any model source."""

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None):
        return cls.from_source(open_source(model, home), prepared)

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None):
        return cls(t5_kernel.T5Config.from_dict(source.json("config.json")), load_weights(source), prepared)


class T5Text:
    """A T5 checkpoint with its tokenizer: prompts to generated texts, or to pooled encoder embeddings.

    A checkpoint without a decoder (T5EncoderModel files) loads as an encoder and can only embed."""

    def __init__(self, model, tokenizer: Tokenizer, config: dict, clean_up_spaces: bool = False):
        self.model, self.tokenizer, self.config, self.clean_up_spaces = model, tokenizer, config, clean_up_spaces

    @classmethod
    def from_source(cls, source: ModelSource, prepared: ops.PreparedStore | None = None) -> "T5Text":
        config = source.json("config.json")
        t5_config = t5_kernel.T5Config.from_dict(config)
        weights = load_weights(source)
        if weights.has("decoder.final_layer_norm.weight"):
            model = T5ForConditionalGeneration(t5_config, weights, source.json_or("generation_config.json", {}), prepared)
        else:
            model = T5EncoderModel(t5_config, weights, prepared)
        clean_up = bool(source.json_or("tokenizer_config.json", {}).get("clean_up_tokenization_spaces", False))
        return cls(model, tokenizer_from_source(source), config, clean_up)

    @classmethod
    def from_pretrained(cls, model, prepared: ops.PreparedStore | None = None, home=None) -> "T5Text":
        return cls.from_source(open_source(model, home), prepared)

    def nbytes(self) -> int:
        return self.model.nbytes()

    @property
    def can_generate(self) -> bool:
        return isinstance(self.model, t5_kernel.T5ForConditionalGeneration)

    def task_params(self, task: str | None) -> dict:
        """The task's prefix and generation defaults from config.json (T5's own prefix for translation)."""
        params = dict((self.config.get("task_specific_params") or {}).get(task) or {}) if task else {}
        pair = TRANSLATION.match(task or "")
        if pair and "prefix" not in params and all(code in _T5_LANGUAGES for code in pair.groups()):
            params["prefix"] = f"translate {_T5_LANGUAGES[pair[1]]} to {_T5_LANGUAGES[pair[2]]}: "
        return params

    def generate_ids(self, texts: list[str], task: str | None = None, decoder_prompt: str | None = None,
                     mode: str | None = None, **options) -> np.ndarray:
        """Ids [N * num_return_sequences, L] for prompts (the task's prefix added), decoder start token first."""
        if not self.can_generate:
            raise ValueError("this T5 checkpoint has no decoder (an encoder-only model): it can only embed")
        params = self.task_params(task)
        batch = encode(self.tokenizer, [params.get("prefix", "") + text for text in texts])
        prefix = [] if not decoder_prompt else self.tokenizer.encode(decoder_prompt, add_special_tokens=False).ids
        return self.model.generate(batch.input_ids, batch.attention_mask, mode=mode, decoder_prefix=prefix,
                                   **task_options(params, options))

    def decode(self, ids: np.ndarray) -> list[str]:
        texts = self.tokenizer.decode_batch(np.asarray(ids).tolist(), skip_special_tokens=True)
        if self.clean_up_spaces:
            for before, after in _CLEAN_UPS:
                texts = [text.replace(before, after) for text in texts]
        return texts

    def embed(self, texts: list[str], normalize: bool = False, mode: str | None = None) -> np.ndarray:
        """Mean of the encoder's last hidden state over each prompt's tokens (sentence-t5) -> float32 [N, D]."""
        mode = ops.resolve_mode(mode)
        batch = encode(self.tokenizer, texts)
        hidden = self.model.encoder(batch.input_ids, batch.attention_mask, mode=mode)  # [N, S, D]
        pooled = ops.mean_pool(hidden, batch.attention_mask, mode=mode)  # [N, D]
        return ops.l2_normalize(pooled, mode=mode) if normalize else pooled

    def multiply_adds(self, encoder_tokens: int, decoder_positions: int) -> int:
        """The deterministic cost of a call: dense layers per encoder token and per decoded position."""
        c = self.model.config
        inner, ff = c.num_heads * c.d_kv, c.d_ff * (3 if c.gated else 2)
        encoder = c.num_layers * (4 * c.d_model * inner + ff * c.d_model)
        decoder = c.num_decoder_layers * (6 * c.d_model * inner + ff * c.d_model) + c.vocab_size * c.d_model
        cross = c.num_decoder_layers * 2 * c.d_model * inner if self.can_generate else 0
        return encoder_tokens * (encoder + cross) + decoder_positions * decoder


# generation options task_specific_params may set (min_length and max_length count the decoder start token)
_TASK_OPTIONS = ("max_length", "min_length", "num_beams", "length_penalty", "no_repeat_ngram_size", "early_stopping",
                 "max_new_tokens", "min_new_tokens", "repetition_penalty")


def task_options(params: dict, options: dict) -> dict:
    """Generation options for one call: the task's defaults, then the caller's."""
    merged = {key: params[key] for key in _TASK_OPTIONS if key in params}
    if options.get("max_new_tokens") is not None:
        merged.pop("max_length", None)
    if options.get("min_new_tokens") is not None:
        merged.pop("min_length", None)
    merged.update({key: value for key, value in options.items() if value is not None})
    if "min_length" in merged:
        merged.setdefault("min_new_tokens", max(int(merged.pop("min_length")) - 1, 0))
    return merged


class Text2TextPipeline:
    """transformers' text2text pipelines: a string -> ``[{KEY: text}, ...]`` (one per returned sequence);
    a list of strings -> one such entry per string (the dict itself when one sequence is returned)."""

    def __init__(self, text_model: T5Text, task: str, mode: str | None = None):
        if not text_model.can_generate:
            raise ValueError(f"{task} needs a T5 with a decoder; this checkpoint is encoder-only")
        self.text_model, self.task, self.mode = text_model, task, mode
        self.key = {"summarization": "summary_text"}.get(task, "translation_text" if TRANSLATION.match(task)
                                                           else "generated_text")

    def __call__(self, inputs: str | list[str], **options):
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        ids = self.text_model.generate_ids(texts, self.task, mode=self.mode, **options) if texts else []
        outputs = self.text_model.decode(ids) if texts else []
        copies = len(outputs) // max(len(texts), 1)
        results = [[{self.key: outputs[i * copies + j]} for j in range(copies)] for i in range(len(texts))]
        if isinstance(inputs, str):
            return results[0]
        return [result[0] if copies == 1 else result for result in results]


class FeatureExtractionPipeline:
    """Mean-pooled encoder embeddings (L2-normalised with ``normalize=True``): one string -> float32 [D];
    a list -> float32 [N, D]."""

    def __init__(self, text_model: T5Text, mode: str | None = None):
        self.text_model, self.mode = text_model, mode

    def __call__(self, inputs: str | list[str], normalize: bool = False) -> np.ndarray:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        vectors = self.text_model.embed(texts, normalize=normalize, mode=self.mode)
        return vectors[0] if isinstance(inputs, str) else vectors


class TaskTable(Mapping):
    """Task -> value for fixed task names, plus every ``translation_xx_to_yy`` under one listed pattern."""

    def __init__(self, fixed: dict, translation):
        self.fixed, self.translation = fixed, translation

    def __getitem__(self, task):
        if task in self.fixed:
            return self.fixed[task]
        if task == "translation_xx_to_yy" or TRANSLATION.match(str(task)):
            return self.translation(task)
        raise KeyError(task)

    def __contains__(self, task) -> bool:
        return task in self.fixed or str(task) == "translation_xx_to_yy" or TRANSLATION.match(str(task)) is not None

    def __iter__(self):
        return iter([*self.fixed, "translation_xx_to_yy"])

    def __len__(self) -> int:
        return len(self.fixed) + 1


def _text_task(task: str):
    return lambda text_model, mode=None: Text2TextPipeline(text_model, task, mode)


PIPELINES = TaskTable({"feature-extraction": FeatureExtractionPipeline,
                       "text2text-generation": _text_task("text2text-generation"),
                       "summarization": _text_task("summarization")}, _text_task)
LUA_TASKS = TaskTable({"feature-extraction": ("generate", "prompt"), "text2text-generation": ("generate", "prompt"),
                       "summarization": ("generate", "prompt")}, lambda task: ("generate", "prompt"))


# ---------------------------------------------------------------------------------- Lua functions

_GENERATION_OPTIONS = ("max_new_tokens", "max_length", "min_new_tokens", "min_length", "num_beams", "length_penalty",
                       "early_stopping", "num_return_sequences", "do_sample", "temperature", "top_k", "top_p",
                       "repetition_penalty", "no_repeat_ngram_size", "repetition_window")
_ALIASES = {"repeat_penalty": "repetition_penalty", "repeat_last_n": "repetition_window"}  # the seed project's names


def _flag(opts: dict, name: str, default):
    value = opts.get(name, default)
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{name} must be a boolean")
    return value


def generate_inputs(opts: dict) -> dict:
    """What changes ``t5.generate``'s output, validated: prompts, task, decoding or embedding, every
    generation option (the seed project's names as aliases) and the seed (inside a process the bridge
    gives a message-derived default, so every node samples the same text)."""
    task = opts.get("task")
    task = None if task is None else _text(task, "task")
    if task is not None and task != "feature-extraction" and task not in LUA_TASKS:
        raise ValueError(f"task must be one of {', '.join(LUA_TASKS)}, got {task!r}")
    decode = _flag(opts, "decode", task != "feature-extraction")
    inputs = {"prompt": _prompts(opts.get("prompt")), "task": None if task == "feature-extraction" else task,
              "decode": decode, "normalize": _flag(opts, "normalize_embeddings", True),
              "return_ids": _flag(opts, "return_ids", False)}
    if not decode:
        return inputs
    options = {}
    for name in (*_GENERATION_OPTIONS, *_ALIASES):
        if opts.get(name) is not None:
            options[_ALIASES.get(name, name)] = opts[name]
    generation.check_types(options)
    if options.get("do_sample") is None and ("temperature" in options or "top_p" in options):
        options["do_sample"] = options.get("temperature", 1) != 0  # the seed sampled when given a temperature
        if options.get("temperature") == 0:
            del options["temperature"]
    decoder_prompt = opts.get("decoder_prompt")
    seed = opts.get("seed")
    inputs.update(options=options, seed=seed,
                  decoder_prompt=None if decoder_prompt is None else _text(decoder_prompt, "decoder_prompt"))
    seed = inputs["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64):
        raise ValueError("seed must be an integer in [0, 2**64)")
    return inputs


def generate(text_model: T5Text, inputs: dict, mode: str) -> tuple[dict, int]:
    """({"texts": [...] per prompt and returned sequence, "ids": int64 [N, L]} or {"vectors": ...}, cost)."""
    prompts = inputs["prompt"]
    texts = [prompts] if isinstance(prompts, str) else prompts
    encoder_tokens = sum(len(e.ids) for e in text_model.tokenizer.encode_batch(texts)) if texts else 0
    if not inputs["decode"]:
        vectors = text_model.embed(texts, inputs["normalize"], mode) if texts else \
            np.zeros((0, text_model.model.config.d_model), np.float32)
        return {"vectors": vectors[0] if isinstance(prompts, str) else vectors}, \
            text_model.multiply_adds(encoder_tokens, 0)
    if not texts:
        return {"texts": [], "ids": np.zeros((0, 0), np.int64)}, 0
    options = dict(inputs["options"])
    if options.get("do_sample"):
        options["seed"] = inputs["seed"]
    ids = text_model.generate_ids(texts, inputs["task"], inputs["decoder_prompt"], mode=mode, **options)
    beams = max(int(options.get("num_beams") or text_model.model.generation_defaults.get("num_beams") or 1), 1)
    return {"texts": text_model.decode(ids), "ids": ids}, \
        text_model.multiply_adds(encoder_tokens, ids.size * beams)


def generate_reply(outputs: dict, opts: dict) -> list:
    """Lua gets text (a string per prompt; a list of strings per prompt when several are returned; a list
    for a list of prompts), or the embeddings; and ``{model_id, prompt, ids}`` (ids when return_ids)."""
    model_id = opts.get("model_id")
    meta = {"model_id": None if model_id is None else _text(model_id, "model_id"), "prompt": opts.get("prompt")}
    if "vectors" in outputs:
        return [outputs["vectors"], meta]
    prompts = opts.get("prompt")
    single = not isinstance(prompts, (list, dict))
    count = 1 if single else len(prompts)
    texts = outputs["texts"]
    copies = len(texts) // max(count, 1)
    grouped = [texts[i * copies:(i + 1) * copies] for i in range(count)]
    per_prompt = [group[0] if copies == 1 else group for group in grouped]
    if opts.get("return_ids"):
        ids = [[int(t) for t in row] for row in np.asarray(outputs["ids"])]
        meta["ids"] = ids[0] if single and copies == 1 else ids
    return [per_prompt[0] if single else per_prompt, meta]
