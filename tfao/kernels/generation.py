"""Token search and sampling over any decoder, with the ids transformers' ``generate`` gives.

A decoder is anything with ``batch_size``, ``mode`` (the math mode), ``next_logits(new_tokens [N, t])``
(float32 logits [N, t, V] of tokens fed after those fed so far) and ``select(rows)`` (keep, reorder or
repeat batch rows, with their caches).
Greedy search, beam search and sampling follow transformers' algorithms step for step (logits processors in
its order, float32 score arithmetic, its beam bookkeeping), so greedy and beam ids match it. Sampling draws
from the project's counter-based generator: one stream per prompt and returned sequence, keyed by the
prompt's tokens, so a prompt samples the same text alone or inside any batch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import numpy as np

from . import ops
from .random import Generator

MAX_BEAMS = 64  # bounds the rows one prompt may occupy
_BANNED = np.float32(-1.0e9)  # transformers' score for beams that must not be picked
_TOP_K_SORT_WHOLE = 16  # rows up to this many times k long are sorted whole: a partition gains nothing there
_GENERATION_CONFIG_KEYS = ("max_new_tokens", "max_length", "min_new_tokens", "num_beams", "length_penalty",
                           "early_stopping", "num_return_sequences", "do_sample", "temperature", "top_k", "top_p",
                           "repetition_penalty", "no_repeat_ngram_size", "eos_token_id", "pad_token_id",
                           "decoder_start_token_id")


@dataclass(frozen=True)
class GenerationSettings:
    eos_token_id: int
    pad_token_id: int
    decoder_start_token_id: int
    max_new_tokens: int = 19  # transformers' max_length 20 counts the decoder start token
    min_new_tokens: int = 0
    num_beams: int = 1
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    repetition_window: int = 0  # penalise only the last n decoder tokens (0: all, as transformers does)
    no_repeat_ngram_size: int = 0
    seed: int = 0

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if not (1 <= self.num_beams <= MAX_BEAMS and 1 <= self.num_return_sequences <= MAX_BEAMS):
            raise ValueError(f"num_beams and num_return_sequences must be between 1 and {MAX_BEAMS}")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ValueError(f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams "
                             f"({self.num_beams})")
        if self.num_beams == 1 and not self.do_sample and self.num_return_sequences > 1:
            raise ValueError("greedy search returns one sequence per prompt: set do_sample or num_beams")
        if self.num_beams > 1 and self.do_sample:
            raise ValueError("sampling with num_beams > 1 is not supported")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1 and self.top_k >= 0):
            raise ValueError("sampling needs temperature > 0, 0 < top_p <= 1 and top_k >= 0")
        if self.early_stopping not in (True, False, "never"):
            raise ValueError(f"early_stopping must be true, false or 'never', got {self.early_stopping!r}")


def check_types(options: dict) -> None:
    """A clear error for an option of the wrong type (a boolean is not a number here)."""
    kinds = {field.name: field.type for field in fields(GenerationSettings)} | {"max_length": "int"}
    for name, value in options.items():
        kind = kinds.get(name)
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise ValueError(f"{name} must be an integer")
        if kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
            raise ValueError(f"{name} must be a number")
        if kind == "bool" and not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")


def settings(generation_config: dict, model_config, options: dict) -> GenerationSettings:
    """The settings of one call: the model's token ids, then generation_config.json, then ``options``."""
    names = {field.name for field in fields(GenerationSettings)}
    unknown = sorted(set(options) - names - {"max_length"})
    if unknown:
        raise ValueError(f"unknown generation option(s): {', '.join(unknown)}")
    merged = {"eos_token_id": model_config.eos_token_id, "pad_token_id": model_config.pad_token_id,
              "decoder_start_token_id": model_config.decoder_start_token_id}
    merged.update({key: generation_config[key] for key in _GENERATION_CONFIG_KEYS
                   if generation_config.get(key) is not None})
    options = {key: value for key, value in options.items() if value is not None}
    check_types(options)
    merged.update(options)
    if isinstance(merged["eos_token_id"], list):
        merged["eos_token_id"] = merged["eos_token_id"][0]
    max_length = merged.pop("max_length", None)
    if "max_new_tokens" not in merged and max_length is not None:
        merged["max_new_tokens"] = int(max_length) - 1
    return GenerationSettings(**merged)


def generate(decoder, settings: GenerationSettings, prompt_keys: list[bytes] | None = None,
             decoder_prefix=()) -> np.ndarray:
    """Ids [batch * num_return_sequences, L]: each row the decoder start token, ``decoder_prefix`` (tokens
    the decoder is made to start with), then the generated tokens.

    ``prompt_keys`` (one per batch row, e.g. the prompt's token bytes) key the sampling streams."""
    start = np.array([settings.decoder_start_token_id, *decoder_prefix], dtype=np.int64)
    if settings.num_beams > 1:
        return _beam_search(decoder, settings, start)
    return _greedy_or_sample(decoder, settings, prompt_keys, start)


def _process(settings: GenerationSettings, sequences: np.ndarray, scores: np.ndarray,
             prompt_length: int) -> np.ndarray:
    """transformers' logits processors, in its order: repetition penalty, n-gram blocking, minimum length."""
    scores = scores.copy()
    if settings.repetition_penalty != 1.0:
        penalty = np.float32(settings.repetition_penalty)
        window = sequences[:, -settings.repetition_window:] if settings.repetition_window > 0 else sequences
        for row, seen in enumerate(window):
            seen = np.unique(seen)
            picked = scores[row, seen]
            scores[row, seen] = np.where(picked < 0, picked * penalty, picked / penalty)
    n = settings.no_repeat_ngram_size
    if n > 0 and sequences.shape[1] + 1 >= n:
        for row, seen in enumerate(sequences.tolist()):
            prefix = tuple(seen[len(seen) - n + 1:])
            banned = [seen[i + n - 1] for i in range(len(seen) - n + 1) if tuple(seen[i:i + n - 1]) == prefix]
            scores[row, banned] = -np.inf
    if sequences.shape[1] - prompt_length < settings.min_new_tokens:
        scores[:, settings.eos_token_id] = -np.inf
    return scores


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values per row, best first, ties to the lower index (as torch.topk on CPU);
    NaN ranks below every number.

    A long row (a beam search's beams times the vocabulary) is first cut down to its values at least as
    large as its k-th largest, found by a partition: the stable sort of those gives the same indices as
    sorting the whole row, at a fraction of the cost (4 x 32,128 values: 3 ms a sort)."""
    keys = -values  # ascending keys are descending values; NaN sorts last either way
    n = keys.shape[-1]
    if n <= _TOP_K_SORT_WHOLE * k:
        return np.argsort(keys, axis=-1, kind="stable")[..., :k]
    rows = keys.reshape(-1, n)
    bounds = np.partition(rows, k - 1, axis=-1)[:, k - 1]  # each row's k-th smallest key
    top = np.empty((len(rows), k), dtype=np.intp)
    for row, (row_keys, bound) in enumerate(zip(rows, bounds)):
        # a NaN bound: fewer than k numbers in the row, so every entry is a candidate
        candidates = np.arange(n) if np.isnan(bound) else np.flatnonzero(row_keys <= bound)  # ascending indices
        top[row] = candidates[np.argsort(row_keys[candidates], kind="stable")[:k]]
    return top.reshape(*keys.shape[:-1], k)


def _greedy_or_sample(decoder, settings: GenerationSettings, prompt_keys, start: np.ndarray) -> np.ndarray:
    batch = decoder.batch_size
    copies = settings.num_return_sequences
    if copies > 1:
        decoder.select(np.repeat(np.arange(batch), copies))
    rows = batch * copies
    generators = None
    if settings.do_sample:
        keys = prompt_keys if prompt_keys is not None else [b""] * batch
        generators = [_stream(settings.seed, keys[row // copies], row % copies) for row in range(rows)]
    sequences = np.tile(start, (rows, 1))
    unfinished = np.ones(rows, dtype=bool)
    logits = decoder.next_logits(sequences)[:, -1]
    for step in range(settings.max_new_tokens):
        scores = _process(settings, sequences, logits, len(start))
        tokens = _sample(settings, scores, generators) if generators else np.argmax(scores, axis=-1)
        tokens = np.where(unfinished, tokens, settings.pad_token_id)
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        unfinished &= tokens != settings.eos_token_id
        if not unfinished.any() or step == settings.max_new_tokens - 1:
            break
        logits = decoder.next_logits(tokens[:, None])[:, -1]
    return sequences


def _stream(seed: int, prompt_key: bytes, copy: int) -> Generator:
    digest = hashlib.sha256(prompt_key + copy.to_bytes(4, "little")).digest()
    return Generator(seed, stream=int.from_bytes(digest[:8], "little"))


def _sample(settings: GenerationSettings, scores: np.ndarray, generators: list[Generator]) -> np.ndarray:
    """transformers' warpers (temperature, top-k, top-p), then one uniform draw per row through the
    cumulative distribution."""
    if settings.temperature != 1.0:
        scores = scores / np.float32(settings.temperature)
    if 0 < settings.top_k < scores.shape[-1]:
        kth = np.take_along_axis(scores, _top_k(scores, settings.top_k)[:, -1:], axis=-1)
        scores = np.where(scores < kth, np.float32(-np.inf), scores)
    if settings.top_p < 1.0:
        order = np.argsort(scores, axis=-1, kind="stable")  # ascending, as transformers sorts
        ascending = np.take_along_axis(scores, order, axis=-1)
        cumulative = np.cumsum(ops.softmax(ascending, where=np.isfinite(ascending)).astype(np.float64), axis=-1)
        drop = cumulative <= 1.0 - settings.top_p
        drop[:, -1] = False  # keep at least the most likely token
        removed = np.zeros_like(drop)
        np.put_along_axis(removed, order, drop, axis=-1)
        scores = np.where(removed, np.float32(-np.inf), scores)
    probs = ops.softmax(scores, where=np.isfinite(scores)).astype(np.float64)
    cumulative = np.cumsum(probs, axis=-1)  # a fixed sequential order
    tokens = np.empty(len(scores), dtype=np.int64)
    for row, generator in enumerate(generators):
        target = generator.uniform(1)[0] * cumulative[row, -1]
        tokens[row] = min(int(np.searchsorted(cumulative[row], target, side="right")), scores.shape[-1] - 1)
    return tokens


def _beam_search(decoder, settings: GenerationSettings, start: np.ndarray) -> np.ndarray:
    """transformers' vectorised beam search (top 2 * num_beams continuations per step, finished hypotheses
    kept by length-penalised score, its early-stopping heuristic)."""
    batch, beams, eos = decoder.batch_size, settings.num_beams, settings.eos_token_id
    keep = 2 * beams
    prompt = len(start)
    max_length = prompt + settings.max_new_tokens
    penalty = settings.length_penalty
    # transformers fills with ``pad or eos``: a pad id of 0 is falsy there, so T5 rows end in eos ids
    fill = settings.pad_token_id or eos
    decoder.select(np.repeat(np.arange(batch), beams))
    running = np.full((batch, beams, max_length), fill, dtype=np.int64)
    running[:, :, :prompt] = start
    running_scores = np.zeros((batch, beams), dtype=np.float32)
    running_scores[:, 1:] = _BANNED
    finished_sequences = running.copy()
    finished_scores = np.full((batch, beams), _BANNED, dtype=np.float32)
    finished_lengths = np.zeros((batch, beams), dtype=np.int64)
    is_finished = np.zeros((batch, beams), dtype=bool)
    improvable = np.ones((batch, 1), dtype=bool)
    first_beams = np.arange(keep) < beams
    batch_rows = np.arange(batch)[:, None]
    length = prompt
    logits = decoder.next_logits(running[:, :, :prompt].reshape(-1, prompt))[:, -1]
    while True:
        log_probs = ops.log_softmax(logits, mode=decoder.mode)
        log_probs = _process(settings, running[:, :, :length].reshape(batch * beams, length), log_probs, prompt)
        vocab = log_probs.shape[-1]
        accumulated = (log_probs.reshape(batch, beams, vocab) + running_scores[:, :, None]).reshape(batch, -1)
        top = _top_k(accumulated, keep)  # [B, 2nb]
        top_scores = np.take_along_axis(accumulated, top, axis=-1)
        source_beam, tokens = top // vocab, top % vocab
        candidates = running[batch_rows, source_beam].copy()  # [B, 2nb, L]
        candidates[:, :, length] = tokens
        hits = (tokens == eos) | (length + 1 >= max_length)

        # the best num_beams candidates that did not finish continue
        open_scores = top_scores + hits.astype(np.float32) * _BANNED
        chosen = _top_k(open_scores, beams)
        running = np.take_along_axis(candidates, chosen[:, :, None], axis=1)
        running_scores = np.take_along_axis(open_scores, chosen, axis=-1)
        source = np.take_along_axis(source_beam, chosen, axis=-1)

        # finished candidates among the top num_beams join the kept hypotheses if they score higher
        just_finished = hits & first_beams[None, :]
        generated = length + 1 - prompt  # eos included
        final_scores = top_scores / np.float32(generated ** penalty)
        full = np.all(is_finished, axis=-1, keepdims=True) & (settings.early_stopping is True)
        final_scores = final_scores + full.astype(np.float32) * _BANNED
        final_scores = final_scores + (~improvable).astype(np.float32) * _BANNED
        final_scores = final_scores + (~just_finished).astype(np.float32) * _BANNED
        merged_scores = np.concatenate([finished_scores, final_scores], axis=1)
        best = _top_k(merged_scores, beams)
        finished_scores = np.take_along_axis(merged_scores, best, axis=-1)
        finished_sequences = np.take_along_axis(np.concatenate([finished_sequences, candidates], axis=1),
                                                best[:, :, None], axis=1)
        merged_lengths = np.concatenate([finished_lengths, np.full((batch, keep), generated)], axis=1)
        finished_lengths = np.take_along_axis(merged_lengths, best, axis=-1)
        is_finished = np.take_along_axis(np.concatenate([is_finished, just_finished], axis=1), best, axis=-1)

        decoder.select((np.arange(batch)[:, None] * beams + source).reshape(-1))
        length += 1
        improvable = improvable & _may_improve(settings, running_scores, finished_scores, is_finished,
                                               length - prompt, max_length - prompt)
        if not (improvable.any() and not (is_finished.all() and settings.early_stopping is True)
                and not hits.all()):
            break
        logits = decoder.next_logits(running[:, :, length - 1].reshape(-1, 1))[:, -1]
    returned = settings.num_return_sequences
    output_length = prompt + int(finished_lengths[:, :returned].max())
    return finished_sequences[:, :returned, :output_length].reshape(batch * returned, output_length)


def _may_improve(settings, running_scores, finished_scores, is_finished, generated, most) -> np.ndarray:
    """transformers' heuristic: can the best running beam still beat the worst kept hypothesis? -> [B, 1]"""
    penalty = settings.length_penalty
    hypothetical = most if settings.early_stopping == "never" and penalty > 0.0 else generated
    best_possible = running_scores[:, :1] / np.float32(hypothetical ** penalty)
    worst = np.where(is_finished, finished_scores.min(axis=1, keepdims=True), _BANNED)
    return np.any(best_possible > worst, axis=-1, keepdims=True)
