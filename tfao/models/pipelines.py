"""``tfao.pipeline``: task-named callables over the model families."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from tfao.models.sentence import SentenceEncoder, cached_sentence_encoder


class FeatureExtractionPipeline:
    """Sentence embeddings: one string -> float32 [H]; a list of strings -> float32 [N, H]."""

    def __init__(self, encoder: SentenceEncoder, mode: str | None = None):
        self.encoder = encoder
        self.mode = mode

    def __call__(self, inputs: str | list[str]) -> np.ndarray:
        if isinstance(inputs, str):
            return self.encoder.encode([inputs], mode=self.mode)[0]
        return self.encoder.encode(list(inputs), mode=self.mode)


TASKS = {"feature-extraction": FeatureExtractionPipeline}


def _load_encoder(model, resolve: Callable | None) -> SentenceEncoder:
    if isinstance(model, SentenceEncoder):
        return model
    if isinstance(model, (str, Path)) and Path(model).is_dir():
        folder = Path(model).resolve()
        return cached_sentence_encoder(f"folder:{folder}", lambda: SentenceEncoder.from_folder(folder))
    if resolve is None:
        raise ValueError(f"model {model!r} is not a model folder (pass resolve= to look up ids)")
    resolved = resolve(model)
    return resolved if isinstance(resolved, SentenceEncoder) else _load_encoder(resolved, None)


def pipeline(task: str, model, *, resolve: Callable | None = None, mode: str | None = None):
    """A callable for ``task`` over ``model``: a model folder, a loaded SentenceEncoder, or anything
    ``resolve`` turns into one of those (e.g. a weave id or a manifest id)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r} (supported: {', '.join(TASKS)})")
    return TASKS[task](_load_encoder(model, resolve), mode=mode)
