# --- determinism matrix: run a child under each BLAS kernel, thread count and numpy SIMD level ---
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest


def _dispatch_names():
    from numpy._core import _multiarray_umath as umath

    supported = [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]
    return [name for name in supported if name != "X86_V3"], [name for name in supported]


def determinism_variants() -> dict[str, dict[str, str]]:
    no_avx512, no_avx2 = _dispatch_names()
    variants = {
        "default": {},
        "haswell": {"OPENBLAS_CORETYPE": "Haswell"},
        "sandybridge": {"OPENBLAS_CORETYPE": "SandyBridge"},
        "prescott": {"OPENBLAS_CORETYPE": "Prescott"},
        "1 thread": {"OPENBLAS_NUM_THREADS": "1"},
        "2 threads": {"OPENBLAS_NUM_THREADS": "2"},
    }
    if no_avx512:
        variants["numpy without AVX-512"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx512)}
    if "X86_V3" in no_avx2:
        variants["numpy without AVX2"] = {"NPY_DISABLE_CPU_FEATURES": " ".join(no_avx2)}
    return variants


def run_child(code: str, env_changes: dict[str, str], timeout: float = 120) -> str:
    """The last line ``code`` prints, run in exact mode in a fresh interpreter with ``env_changes``."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    env.update(env_changes, TFAO_MATH="exact", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def outputs_everywhere(code: str, variants: dict[str, dict[str, str]] | None = None) -> dict[str, str]:
    """``{variant: last line printed}`` for ``code`` run under each determinism variant, two at a time."""
    variants = determinism_variants() if variants is None else variants
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(variants, pool.map(lambda env: run_child(code, env), variants.values())))


@pytest.fixture
def determinism_matrix():
    """Runs child code under every determinism variant; returns ``{variant: last line printed}``."""
    return outputs_everywhere
