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

from threadpoolctl import ThreadpoolController


@cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_threads() -> int:
    """The threads BLAS runs with here (OPENBLAS_NUM_THREADS and the like are honoured): the cores to use."""
    return max([pool.num_threads for pool in _controller().select(user_api="blas").lib_controllers] or [1])


def run_pieces(work: Callable[[object], None], pieces: Iterable) -> None:
    """``work(piece)`` for every piece, on up to ``blas_threads()`` threads."""
    pieces = list(pieces)
    workers = min(blas_threads(), len(pieces))
    if workers <= 1:
        for piece in pieces:
            work(piece)
        return
    with _controller().limit(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(work, pieces):  # re-raises a piece's exception here
            pass
