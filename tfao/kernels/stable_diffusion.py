"""Stable Diffusion's three networks loaded together from a diffusers folder or an original single file.

A diffusers folder: ``model_index.json`` names the components; ``text_encoder/``, ``unet/`` and ``vae/`` hold
config.json and safetensors (``*.fp16.safetensors`` variants too), ``scheduler/scheduler_config.json`` the
noise schedule, ``tokenizer/`` the CLIP tokenizer (read by the model layer); ``safety_checker`` and
``feature_extractor`` are not used. A single file (``.safetensors``, fp32 or fp16) holds all three networks;
its configuration is SD1.5's unless ``config=`` names a diffusers folder whose configs override it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .clip import CLIPTextModel, CLIPTextModelWithProjection
from .diffusers_folder import read_model_folder
from .gemm import PreparedStore
from .schedulers import SD15_SCHEDULER_CONFIG
from .sd_single_file import (SD15_TEXT_ENCODER_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG, UNET_PREFIX, SingleFileNames)
from .unet import UNet2DConditionModel
from .vae import AutoencoderKL
from .weights import WeightError, Weights

_TEXT_ENCODERS = {"CLIPTextModel": CLIPTextModel, "CLIPTextModelWithProjection": CLIPTextModelWithProjection}


@dataclass
class StableDiffusionModels:
    """The networks of one Stable Diffusion checkpoint and the settings the pipeline needs beside them."""

    text_encoder: CLIPTextModel
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler_config: dict
    tokenizer_folder: Path | None  # the diffusers folder's tokenizer/, when there is one

    def nbytes(self) -> int:
        return self.text_encoder.nbytes() + self.unet.nbytes() + self.vae.nbytes()


def _text_encoder_class(index: dict) -> type[CLIPTextModel]:
    _, name = index.get("text_encoder") or (None, "CLIPTextModel")
    if name not in _TEXT_ENCODERS:
        raise ValueError(f"unsupported text encoder {name!r}")
    return _TEXT_ENCODERS[name]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise WeightError(f"the Stable Diffusion folder has no {path.parent.name}/{path.name}") from None


def load_folder(folder, variant: str | None = None, prepared: PreparedStore | None = None) -> StableDiffusionModels:
    """A diffusers Stable Diffusion folder; ``variant`` ("fp16") picks ``*.fp16.safetensors`` weights."""
    folder = Path(folder)
    index = _read_json(folder / "model_index.json")
    scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
    return StableDiffusionModels(
        text_encoder=_text_encoder_class(index)(*read_model_folder(folder / "text_encoder", "model", variant), prepared),
        unet=UNet2DConditionModel(*read_model_folder(folder / "unet", "diffusion_pytorch_model", variant), prepared),
        vae=AutoencoderKL(*read_model_folder(folder / "vae", "diffusion_pytorch_model", variant), prepared),
        scheduler_config=scheduler,
        tokenizer_folder=folder / "tokenizer" if (folder / "tokenizer").is_dir() else None,
    )


def load_single_file(path, config=None, prepared: PreparedStore | None = None) -> StableDiffusionModels:
    """An original single-file checkpoint; ``config`` is a diffusers folder whose configs replace SD1.5's."""
    configs = {"text_encoder": SD15_TEXT_ENCODER_CONFIG, "unet": SD15_UNET_CONFIG, "vae": SD15_VAE_CONFIG}
    scheduler, tokenizer, index = SD15_SCHEDULER_CONFIG, None, {}
    if config is not None:
        folder = Path(config)
        configs = {part: _read_json(folder / part / "config.json") for part in configs}
        scheduler = _read_json(folder / "scheduler" / "scheduler_config.json")
        tokenizer = folder / "tokenizer" if (folder / "tokenizer").is_dir() else None
        index = _read_json(folder / "model_index.json") if (folder / "model_index.json").exists() else {}
    stored = Weights.load(path)
    if not any(name.startswith(UNET_PREFIX) for name in stored.names()):
        raise WeightError(f"not a Stable Diffusion single file: no {UNET_PREFIX}* tensors")
    weights = stored.renamed(SingleFileNames(configs["unet"], configs["vae"]))
    try:
        return StableDiffusionModels(
            text_encoder=_text_encoder_class(index)(configs["text_encoder"], weights.pp("text_encoder"), prepared),
            unet=UNet2DConditionModel(configs["unet"], weights.pp("unet"), prepared),
            vae=AutoencoderKL(configs["vae"], weights.pp("vae"), prepared),
            scheduler_config=scheduler,
            tokenizer_folder=tokenizer,
        )
    except WeightError as error:
        which = "the given config" if config is not None else "SD1.5 (pass config= a diffusers folder for others)"
        raise WeightError(f"single file does not fit {which}: {error} (names as diffusers reads them)") from None


def load(source, config=None, variant: str | None = None, prepared: PreparedStore | None = None) -> StableDiffusionModels:
    """A diffusers folder or a single file, by what ``source`` is; exact-mode weights shared through ``prepared``."""
    source = Path(source)
    return load_folder(source, variant, prepared) if source.is_dir() else load_single_file(source, config, prepared)
