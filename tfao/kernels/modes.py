"""The two math modes: ``exact`` (the same bits on every machine, the default) and ``fast`` (plain float32 BLAS)."""

from __future__ import annotations

import contextlib
import contextvars
import os

MODES = ("exact", "fast")
# The version of exact-mode bits: bump it with every deliberate change of them, together with the golden
# hashes (tests/test_bert_determinism.py). It keys the inference memo and the prepared weights, so an
# upgraded node never replays results its kernels would not compute.
KERNELS_VERSION = 4
_mode_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("tfao_math_mode", default=None)


def _checked(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"math mode must be one of {MODES}, got {mode!r}")
    return mode


def current_mode() -> str:
    """The active math mode: the innermost ``math_mode`` block, else env ``TFAO_MATH``, else ``exact``."""
    return _mode_override.get() or _checked(os.environ.get("TFAO_MATH", "exact"))


@contextlib.contextmanager
def math_mode(mode: str):
    token = _mode_override.set(_checked(mode))
    try:
        yield
    finally:
        _mode_override.reset(token)


def resolve_mode(mode: str | None) -> str:
    return _checked(mode) if mode is not None else current_mode()
