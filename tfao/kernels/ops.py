"""The numeric primitives every model is built from, in two math modes, as one namespace for the model files.

``exact`` (the default) gives the same bits on every CPU, SIMD level, BLAS kernel, thread count and batch
composition; ``fast`` is plain float32 numpy/BLAS. Each concern lives in its own module: ``modes``, ``gemm``,
``reductions``, ``transcendentals`` and ``nn``.
"""

from .gemm import Linear, PreparedStore, RightFactor, gemm_bits, matmul, weighted_rows
from .modes import KERNELS_VERSION, MODES, current_mode, math_mode, resolve_mode
from .nn import (ACTIVATIONS, SoftmaxProduct, gelu, gelu_tanh, l2_normalize, layer_norm, log_softmax, max_pool,
                 mean_pool, quick_gelu, relu, rms_norm, silu, softmax)
from .reductions import max_reduce, tree_sum
from .transcendentals import cos, erf, exp, log, sin, tanh

__all__ = [
    "ACTIVATIONS", "KERNELS_VERSION", "MODES", "Linear", "PreparedStore", "cos", "current_mode", "erf", "exp",
    "gelu", "gelu_tanh", "gemm_bits", "l2_normalize", "layer_norm", "log", "log_softmax", "math_mode", "matmul",
    "max_pool", "max_reduce", "mean_pool", "quick_gelu", "relu", "RightFactor", "resolve_mode", "rms_norm", "silu", "sin", "softmax", "SoftmaxProduct",
    "tanh", "tree_sum", "weighted_rows",
]
