"""Stable Diffusion 1.x text-to-image and image-to-image, as diffusers' pipelines run it: CLIP prompt
embeddings with classifier-free guidance, a scheduler's denoising loop over the UNet, the VAE decoder.

Noise comes from the project's Philox generator (``seed``), so a seed gives the same image, and the
same PNG bytes, on every machine in exact mode.
"""

from __future__ import annotations

import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

from tfao.kernels import ops
from tfao.kernels.clip import CLIPTextModel
from tfao.kernels.random import Generator
from tfao.kernels.schedulers import Scheduler, make_scheduler
from tfao.kernels.unet import UNet2DConditionModel
from tfao.kernels.vae import AutoencoderKL
from tfao.models.png import encode_png

CLIP_MAX_LENGTH = 77
_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def clip_tokenizer_from_vocab(vocab: dict, merges: list[str]) -> Tokenizer:
    """CLIP's byte-level BPE from vocab.json and merges.txt (the files the SD1.5 folder ships)."""
    pairs = [tuple(line.split()) for line in merges if line and not line.startswith("#version")]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=pairs, unk_token=_EOS, end_of_word_suffix="</w>",
                                     continuing_subword_prefix="", fuse_unk=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    tokenizer.post_processor = processors.RobertaProcessing((_EOS, vocab[_EOS]), (_BOS, vocab[_BOS]), add_prefix_space=False, trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def load_clip_tokenizer(folder) -> Tokenizer:
    """The prompt tokenizer of a ``tokenizer/`` folder, padded and truncated to 77 tokens as SD feeds CLIP."""
    folder = Path(folder)
    if (folder / "tokenizer.json").exists():
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    else:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        tokenizer = clip_tokenizer_from_vocab(vocab, (folder / "merges.txt").read_text(encoding="utf-8").splitlines())
    settings = json.loads((folder / "tokenizer_config.json").read_text()) if (folder / "tokenizer_config.json").exists() else {}
    pad_token = settings.get("pad_token") or _EOS
    pad_token = pad_token["content"] if isinstance(pad_token, dict) else pad_token
    length = min(int(settings.get("model_max_length") or CLIP_MAX_LENGTH), CLIP_MAX_LENGTH)
    tokenizer.no_padding()
    tokenizer.enable_padding(length=length, pad_id=tokenizer.token_to_id(pad_token), pad_token=pad_token)
    tokenizer.enable_truncation(length)  # longer prompts keep their first 75 tokens, as diffusers does
    return tokenizer


def pixels_from_decoded(images: np.ndarray) -> np.ndarray:
    """VAE output [N, 3, H, W] in [-1, 1] -> uint8 [N, H, W, 3], rounded as diffusers' numpy_to_pil."""
    unit = np.clip(images / np.float32(2) + np.float32(0.5), 0, 1)
    return np.round(unit.transpose(0, 2, 3, 1) * np.float32(255)).astype(np.uint8)


@dataclass
class StableDiffusionOutput:
    """``images`` as PIL images (``.save("cat.png")``), ``pixels`` uint8 [N, H, W, 3], the ``seed`` used."""

    pixels: np.ndarray
    seed: int | None
    latents: np.ndarray = field(repr=False, default=None)

    @property
    def images(self) -> list:
        from PIL import Image

        return [Image.fromarray(pixels) for pixels in self.pixels]

    def png(self, index: int = 0) -> bytes:
        """The deterministic PNG bytes of one image."""
        return encode_png(self.pixels[index])


def _progress(total: int, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not (sys.stderr.isatty() if enabled is None else enabled), unit="step")


def _as_list(prompt, what: str) -> list[str]:
    prompts = [prompt] if isinstance(prompt, str) else list(prompt) if isinstance(prompt, (list, tuple)) else []
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"{what} must be a string or a non-empty list of strings")
    return prompts


class StableDiffusionPipeline:
    """``pipe(prompt, ...)`` -> StableDiffusionOutput; ``pipe(prompt, image=..., strength=...)`` for img2img."""

    def __init__(self, text_encoder: CLIPTextModel, tokenizer: Tokenizer, unet: UNet2DConditionModel, vae: AutoencoderKL,
                 scheduler_config: dict | None = None, mode: str | None = None):
        self.text_encoder, self.tokenizer, self.unet, self.vae = text_encoder, tokenizer, unet, vae
        self.scheduler_config = scheduler_config
        self.mode = mode
        self.vae_scale_factor = 2 ** (len(vae.config.get("block_out_channels", (64,))) - 1)
        self.default_size = int(unet.config.get("sample_size", 64)) * self.vae_scale_factor

    @classmethod
    def from_pretrained(cls, source, config=None, mode: str | None = None) -> "StableDiffusionPipeline":
        """A diffusers folder (model_index.json, text_encoder/, tokenizer/, unet/, vae/, scheduler/)."""
        folder = Path(source)
        if not (folder / "model_index.json").exists():
            raise ValueError(f"{source!r} is not a Stable Diffusion folder (no model_index.json)")
        scheduler_file = folder / "scheduler" / "scheduler_config.json"
        return cls(
            CLIPTextModel.from_pretrained(folder / "text_encoder"),
            load_clip_tokenizer(folder / "tokenizer"),
            UNet2DConditionModel.from_pretrained(folder / "unet"),
            AutoencoderKL.from_pretrained(folder / "vae"),
            json.loads(scheduler_file.read_text()) if scheduler_file.exists() else None,
            mode=mode,
        )

    def scheduler(self, name: str | Scheduler | None = None) -> Scheduler:
        """A fresh scheduler by name on this model's config (``None``: the folder's own)."""
        return name if isinstance(name, Scheduler) else make_scheduler(name, self.scheduler_config)

    def encode_prompt(self, prompts: list[str], mode: str) -> np.ndarray:
        """Prompts -> CLIP's last hidden state [N, 77, H] (no attention mask: SD1.x attends to the padding)."""
        ids = np.array([e.ids for e in self.tokenizer.encode_batch(prompts)], dtype=np.int64)  # [N, 77]
        hidden, _ = self.text_encoder(ids, mode=mode)
        return hidden

    def _embeddings(self, prompts, negative_prompt, per_prompt: int, guided: bool, mode: str) -> np.ndarray:
        """[uncond; cond] embeddings for every image when guided, else cond only; [B or 2B, 77, H]."""
        negatives = [""] * len(prompts) if negative_prompt is None else _as_list(negative_prompt, "negative_prompt")
        if len(negatives) == 1 and len(prompts) > 1:
            negatives = negatives * len(prompts)
        if len(negatives) != len(prompts):
            raise ValueError(f"{len(negatives)} negative prompts for {len(prompts)} prompts")
        texts = (negatives + prompts) if guided else prompts
        embeddings = self.encode_prompt(texts, mode)
        return np.repeat(embeddings, per_prompt, axis=0)  # each prompt's images side by side, as diffusers

    def _check_size(self, height: int, width: int) -> None:
        for name, value in (("height", height), ("width", width)):
            if not isinstance(value, (int, np.integer)) or value <= 0 or value % self.vae_scale_factor:
                raise ValueError(f"{name} must be a positive multiple of {self.vae_scale_factor}, got {value!r}")

    def encode_image(self, image, generator: Generator, mode: str) -> np.ndarray:
        """A PIL image, uint8 [H, W, 3] or float [-1, 1] [1, 3, H, W] -> scaled latents sampled from the VAE."""
        pixels = _image_array(image, self.vae_scale_factor)
        mean, logvar = self.vae.encode(pixels, mode=mode)
        std = ops.exp(np.float32(0.5) * logvar, mode=mode)
        sample = mean + std * generator.standard_normal(mean.shape)
        return (np.float32(self.vae.scaling_factor) * sample).astype(np.float32)

    def __call__(self, prompt, negative_prompt=None, height: int | None = None, width: int | None = None,
                 num_inference_steps: int = 50, guidance_scale: float = 7.5, num_images_per_prompt: int = 1,
                 seed: int | None = None, latents=None, scheduler: str | Scheduler | None = None,
                 image=None, strength: float = 0.8, progress: bool | None = None) -> StableDiffusionOutput:
        mode = ops.resolve_mode(self.mode)
        prompts = _as_list(prompt, "prompt")
        if not isinstance(num_images_per_prompt, (int, np.integer)) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a positive integer, got {num_images_per_prompt!r}")
        if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        if not np.isfinite(float(guidance_scale)):
            raise ValueError("guidance_scale must be finite")
        seed = secrets.randbits(63) if seed is None and latents is None else seed
        generator = Generator(seed if seed is not None else 0)
        batch = len(prompts) * num_images_per_prompt
        guided = guidance_scale > 1.0
        embeddings = self._embeddings(prompts, negative_prompt, num_images_per_prompt, guided, mode)

        schedule = self.scheduler(scheduler)
        schedule.set_timesteps(num_inference_steps)
        timesteps = schedule.timesteps
        if image is None:
            height = self.default_size if height is None else height
            width = self.default_size if width is None else width
            self._check_size(height, width)
            shape = (batch, self.unet.config.get("in_channels", 4), height // self.vae_scale_factor, width // self.vae_scale_factor)
            noise = generator.standard_normal(shape) if latents is None else np.asarray(latents, dtype=np.float32)
            if noise.shape != shape:
                raise ValueError(f"latents must have shape {shape}, got {noise.shape}")
            x = (noise * np.float32(schedule.init_noise_sigma)).astype(np.float32)
        else:
            if not 0.0 <= float(strength) <= 1.0:
                raise ValueError(f"strength must be in [0, 1], got {strength!r}")
            # diffusers' arithmetic: skip the first (1 - strength) of the schedule
            start = num_inference_steps - min(int(num_inference_steps * strength), num_inference_steps)
            if start >= num_inference_steps:
                raise ValueError(f"strength {strength} with {num_inference_steps} steps leaves no denoising step")
            begin = start * schedule.order
            timesteps = timesteps[begin:]
            schedule.set_begin_index(begin)
            initial = self.encode_image(image, generator, mode)
            initial = np.repeat(initial, batch // initial.shape[0], axis=0) if initial.shape[0] != batch else initial
            x = schedule.add_noise(initial, generator.standard_normal(initial.shape))

        with _progress(len(timesteps), progress) as bar:
            for t in timesteps:
                model_input = np.concatenate([x, x]) if guided else x  # [2B or B, 4, h, w]
                model_input = schedule.scale_model_input(model_input, t)
                noise_pred = self.unet(model_input, t, embeddings, mode=mode)
                if guided:
                    uncond, text = np.split(noise_pred, 2)
                    noise_pred = uncond + np.float32(guidance_scale) * (text - uncond)
                x = schedule.step(noise_pred, t, x, generator=generator)
                bar.update(1)
        decoded = self.vae.decode(x / np.float32(self.vae.scaling_factor), mode=mode)
        return StableDiffusionOutput(pixels=pixels_from_decoded(decoded), seed=seed, latents=x)


class StableDiffusionImg2ImgPipeline(StableDiffusionPipeline):
    """``pipe(prompt, image, strength=0.8, ...)``: the txt2img pipeline started from a noised image."""

    def __call__(self, prompt, image=None, strength: float = 0.8, **options) -> StableDiffusionOutput:
        if image is None:
            raise ValueError("img2img needs an image")
        return super().__call__(prompt, image=image, strength=strength, **options)


def _image_array(image, multiple: int) -> np.ndarray:
    """An input image as float32 [1, 3, H, W] in [-1, 1]; PIL images are resized down to a multiple of 8."""
    if isinstance(image, np.ndarray) and image.dtype != np.uint8:
        array = np.asarray(image, dtype=np.float32)
        if array.ndim != 4 or array.shape[1] != 3:
            raise ValueError(f"a float image must be [N, 3, H, W] in [-1, 1], got shape {array.shape}")
        return array
    if not isinstance(image, np.ndarray):
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise ValueError(f"image must be a PIL image or a numpy array, got {type(image).__name__}")
        image = image.convert("RGB")
        size = (image.width // multiple * multiple, image.height // multiple * multiple)
        if min(size) == 0:
            raise ValueError(f"image is smaller than {multiple}x{multiple} pixels")
        if size != image.size:
            image = image.resize(size, Image.Resampling.LANCZOS)
        image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a uint8 image must be [H, W, 3], got shape {image.shape}")
    unit = image.astype(np.float32) / np.float32(255)
    return (np.float32(2) * unit - np.float32(1)).transpose(2, 0, 1)[None]  # [1, 3, H, W]
