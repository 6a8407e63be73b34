"""Transformers-AO: a Lua-scriptable, deterministic inference runtime for AO processes.

Top-level names are imported on first use, so ``import tfao`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Node": "tfao.node",
    "ProcessHandle": "tfao.node",
    "pipeline": "tfao.models.pipelines",
    "BertModel": "tfao.models.bert",
    "T5ForConditionalGeneration": "tfao.models.t5",
    "T5EncoderModel": "tfao.models.t5",
    "CLIPTextModel": "tfao.kernels.clip",
    "CLIPTextModelWithProjection": "tfao.kernels.clip",
    "CLIPTextEmbedder": "tfao.models.clip",
    "UNet2DConditionModel": "tfao.kernels.unet",
    "AutoencoderKL": "tfao.kernels.vae",
    "StableDiffusionPipeline": "tfao.models.stable_diffusion",
    "StableDiffusionImg2ImgPipeline": "tfao.models.stable_diffusion",
    "keep_freed_memory": "tfao.heap",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tfao' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
