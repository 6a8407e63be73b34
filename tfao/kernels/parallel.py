"""Independent pieces of work spread over the cores BLAS would use, with BLAS held to one thread meanwhile:
each piece's GEMMs then run on the core that runs the piece, and numpy's elementwise passes (one core
each) run side by side instead of idling the other cores. Pieces write disjoint outputs, and no result
depends on which thread runs which piece, so the bits are those of running them one after another.

Threads live for one call only: nothing is left running across a fork.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads() -> int:
    """The threads BLAS runs with here (OPENBLAS_NUM_THREADS and the like are honoured): the cores to use."""
    return max([pool.num_threads for pool in _controller().select(user_api="blas").lib_controllers] or [1])


def blas_architecture() -> str | None:
    """The kernels OpenBLAS picked for this CPU (``SkylakeX``, ``Haswell``, ...; OPENBLAS_CORETYPE chooses
    them), or None for another BLAS."""
    pools = _controller().select(internal_api="openblas").lib_controllers
    return pools[0].info().get("architecture") if pools else None


def run_pieces(work: Callable[[object], None], pieces: Iterable, per_thread: int = 1) -> None:
    """``work(piece)`` for every piece, on up to ``blas_threads()`` threads with at least ``per_thread``
    pieces each (fewer pieces run one after another, with BLAS on all its threads)."""
    pieces = list(pieces)
    workers = min(blas_threads(), len(pieces) // per_thread)
    if workers <= 1:
        for piece in pieces:
            work(piece)
        return
    with _controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(work, pieces):  # re-raises a piece's exception here
            pass


SPLIT_TOKENS = 128  # tokens from which a text encoder splits its batch (below, threads cost more)


def text_pieces(tokens: int, mode: str) -> int:
    """The most pieces a text encoder splits a batch of ``tokens`` tokens into: none below ``SPLIT_TOKENS``;
    in fast mode one per ``SPLIT_TOKENS`` tokens, since float32 products of few rows on one core each lose
    more than the elementwise passes gain side by side (with OpenBLAS's SkylakeX kernels fast BERT at 135
    and 180 tokens took 0.82-0.86 of the time whole, CLIP's 2 x 77 0.89); exact mode's heavier passes gain
    from 180 tokens on (at 255 split took 0.77 of the time)."""
    if tokens < SPLIT_TOKENS:
        return 1
    return tokens // SPLIT_TOKENS if mode == "fast" else tokens


def over_batch(forward: Callable[[slice], np.ndarray | tuple], batch: int, most_pieces: int | None = None,
               axis: int = 0) -> np.ndarray | tuple:
    """``forward(rows)`` for consecutive slices of a batch, one per core side by side (at most ``most_pieces``),
    joined along ``axis`` (the first: the batch's; a norm's pieces of channels join along the last). For a
    forward whose rows do not depend on one another (exact mode's promise) these are the bits of
    ``forward(slice(0, batch))``. Each core then runs whole GEMMs of its own, and the elementwise passes,
    which numpy runs on one core, run on all of them: exact BERT at batch 32 took 0.75 of the time. A small
    batch gains nothing (see ``text_pieces``)."""
    pieces = min(blas_threads(), batch, most_pieces or batch)
    if pieces <= 1:
        return forward(slice(0, batch))
    bounds = [batch * i // pieces for i in range(pieces + 1)]
    results: list = [None] * pieces

    def piece(i: int) -> None:
        results[i] = forward(slice(bounds[i], bounds[i + 1]))

    run_pieces(piece, range(pieces))
    if isinstance(results[0], tuple):
        return tuple(np.concatenate(parts, axis) for parts in zip(*results))
    return np.concatenate(results, axis)
