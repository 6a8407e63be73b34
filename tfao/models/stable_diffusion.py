"""Stable Diffusion 1.x text-to-image and image-to-image, as diffusers' pipelines run it: CLIP prompt
embeddings with classifier-free guidance, a scheduler's denoising loop over the UNet, the VAE decoder.

Noise comes from the project's Philox generator (``seed``), so a seed gives the same image, and the
same PNG bytes, on every machine in exact mode.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from tfao.kernels import ops
from tfao.kernels.clip import CLIPTextModel, CLIPTextModelWithProjection
from tfao.kernels.networks import linear_layers
from tfao.kernels.random import Generator
from tfao.kernels.schedulers import SD15_SCHEDULER_CONFIG, Scheduler, make_scheduler
from tfao.kernels.sd_single_file import SD15_TEXT_ENCODER_CONFIG, SD15_UNET_CONFIG, SD15_VAE_CONFIG
from tfao.kernels.stable_diffusion import load_single_file
from tfao.kernels.unet import UNet2DConditionModel
from tfao.kernels.vae import AutoencoderKL
from tfao.kernels.weights import Weights
from tfao.models.clip import CLIP_MAX_LENGTH, load_clip_tokenizer
from tfao.models.png import encode_png
from tfao.models.sources import ModelSource, SourceError, open_source


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
    multiply_adds: int = 0  # the run's deterministic cost (see StableDiffusionPipeline.multiply_adds)

    @property
    def images(self) -> list:
        from PIL import Image

        return [Image.fromarray(pixels) for pixels in self.pixels]

    def png(self, index: int = 0) -> bytes:
        """The deterministic PNG bytes of one image."""
        return encode_png(self.pixels[index])


def detect(source: ModelSource) -> bool:
    """A Stable Diffusion model: diffusers' model_index.json, or the UNet weights in unet/."""
    return source.has("model_index.json") or any(path.startswith("unet/diffusion_pytorch_model") for path in source.paths())


def _component(source: ModelSource, stem: str, default_config: dict) -> tuple[dict, Weights]:
    """A component folder's config (SD1.5's when absent) and weights: ``stem``.safetensors, its fp16
    variant, or the shards an index lists."""
    config = source.json_or("config.json", default_config)
    for name in (stem, f"{stem}.fp16"):
        if source.has(f"{name}.safetensors.index.json"):
            shards = sorted(set(source.json(f"{name}.safetensors.index.json")["weight_map"].values()))
            return config, Weights.load([source.local(shard) for shard in shards])
        if source.has(f"{name}.safetensors"):
            return config, Weights.load(source.local(f"{name}.safetensors"))
    raise SourceError(f"{source.origin} has no {source.prefix}{stem}.safetensors")


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
        # multiply-adds per token / latent pixel / pixel: every linear and convolution weight once
        self.weights_per_position = [sum(layer.weight.size for layer in linear_layers(net)) for net in (text_encoder, unet, vae)]

    @classmethod
    def from_pretrained(cls, source, config=None, mode: str | None = None, home=None) -> "StableDiffusionPipeline":
        """A diffusers folder, a manifest id in the local weave (of ``home``), or an original single file
        (``config``: a diffusers folder for its configs and tokenizer; SD1.5's configs otherwise)."""
        if isinstance(source, (str, Path)) and Path(source).is_file():
            if config is None or not (Path(config) / "tokenizer").is_dir():
                raise SourceError("a single file holds no tokenizer: pass config= a diffusers folder that has tokenizer/")
            models = load_single_file(source, config)
            return cls(models.text_encoder, load_clip_tokenizer(models.tokenizer_folder), models.unet, models.vae,
                       models.scheduler_config, mode=mode)
        return cls.from_source(open_source(source, home), mode=mode)

    @classmethod
    def from_source(cls, source: ModelSource, mode: str | None = None,
                    prepared: ops.PreparedStore | None = None) -> "StableDiffusionPipeline":
        """The diffusers layout read from a ModelSource (a folder or a manifest's files); a missing config.json
        is SD1.5's, so the three weight files and a tokenizer are enough."""
        if not detect(source):
            raise SourceError(f"{source.origin} is not a Stable Diffusion model (no unet/ weights)")
        index = source.json_or("model_index.json", {})
        encoder_class = CLIPTextModelWithProjection if (index.get("text_encoder") or [None, ""])[1] == "CLIPTextModelWithProjection" else CLIPTextModel
        return cls(
            encoder_class(*_component(source.sub("text_encoder"), "model", SD15_TEXT_ENCODER_CONFIG), prepared),
            load_clip_tokenizer(source.sub("tokenizer")),
            UNet2DConditionModel(*_component(source.sub("unet"), "diffusion_pytorch_model", SD15_UNET_CONFIG), prepared),
            AutoencoderKL(*_component(source.sub("vae"), "diffusion_pytorch_model", SD15_VAE_CONFIG), prepared),
            source.json_or("scheduler/scheduler_config.json", SD15_SCHEDULER_CONFIG),
            mode=mode,
        )

    def nbytes(self) -> int:
        """Bytes of weights this pipeline references (for the model cache's budget)."""
        return self.text_encoder.nbytes() + self.unet.nbytes() + self.vae.nbytes()

    def multiply_adds(self, batch: int, height: int, width: int, unet_calls: int, encoded: int) -> int:
        """A deterministic bound on a run's multiply-adds: every weight of a network once per position it
        is applied at (the UNet per latent pixel and call, the VAE per pixel, CLIP per token)."""
        clip, unet, vae = self.weights_per_position
        latent_pixels = (height // self.vae_scale_factor) * (width // self.vae_scale_factor)
        return clip * CLIP_MAX_LENGTH * encoded + unet * latent_pixels * unet_calls + vae * height * width * batch

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
                 image=None, strength: float = 0.8, progress: bool | None = None, mode: str | None = None) -> StableDiffusionOutput:
        mode = ops.resolve_mode(mode if mode is not None else self.mode)
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

        cost = self.multiply_adds(batch, x.shape[2] * self.vae_scale_factor, x.shape[3] * self.vae_scale_factor,
                                  len(timesteps) * (2 if guided else 1) * batch, len(embeddings) // num_images_per_prompt)
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
        return StableDiffusionOutput(pixels=pixels_from_decoded(decoded), seed=seed, latents=x, multiply_adds=cost)


class StableDiffusionImg2ImgPipeline(StableDiffusionPipeline):
    """``pipe(prompt, image, strength=0.8, ...)``: the txt2img pipeline started from a noised image."""

    def __call__(self, prompt, image=None, strength: float = 0.8, **options) -> StableDiffusionOutput:
        return super().__call__(prompt, image=_required(image), strength=strength, **options)


def _required(image):
    if image is None:
        raise ValueError("img2img needs an image")
    return image


class TextToImage:
    """``tfao.pipeline("text-to-image", model)``: ``(prompt, **options)`` -> StableDiffusionOutput."""

    def __init__(self, pipe: StableDiffusionPipeline, mode: str | None = None):
        self.pipe, self.mode = pipe, mode

    def __call__(self, prompt, **options) -> StableDiffusionOutput:
        return self.pipe(prompt, mode=options.pop("mode", self.mode), **options)


class ImageToImage(TextToImage):
    """``tfao.pipeline("image-to-image", model)``: ``(prompt, image, strength=0.8, **options)``."""

    def __call__(self, prompt, image=None, strength: float = 0.8, **options) -> StableDiffusionOutput:
        return super().__call__(prompt, image=_required(image), strength=strength, **options)


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


# ---------------------------------------------------------------------------------- Lua functions
# require("transformers").sd.txt2img(opts) / .img2img(opts): the seed project's option names work too.

LUA_ALIASES = {"unet_model": "model", "uncond_prompt": "negative_prompt", "n_steps": "steps",
               "img2img_strength": "strength", "num_samples": "num_images_per_prompt"}
LUA_FILES = {"model": "unet/diffusion_pytorch_model.safetensors", "clip_model": "text_encoder/model.safetensors",
             "vae_model": "vae/diffusion_pytorch_model.safetensors", "tokenizer": "tokenizer/tokenizer.json"}
_DATA_URL = "data:image/png;base64,"
IMAGE_TAGS = (("Content-Type", "image/png"), ("Type", "Image"))  # of the weave items store = true makes


def lua_options(opts: dict) -> dict:
    """The seed project's option names under this project's (``n_steps`` -> ``steps``...)."""
    renamed = dict(opts)
    for old, new in LUA_ALIASES.items():
        if old in renamed:
            value = renamed.pop(old)
            renamed.setdefault(new, value)
    return renamed


def _text_option(opts: dict, name: str, default=None):
    value = opts.get(name, default)
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        raise ValueError(f"opts.{name} must be a string")
    return value


def _int_option(opts: dict, name: str, default: int, low: int, high: int) -> int:
    value = opts.get(name, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"opts.{name} must be an integer in [{low}, {high}]")
    return value


def _number_option(opts: dict, name: str, default: float, low: float, high: float) -> float:
    value = opts.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"opts.{name} must be a number in [{low}, {high}]")
    return float(value)


def image_bytes(value) -> bytes:
    """PNG (or other image) bytes from raw bytes, base64 text or a data URL."""
    import base64
    import binascii

    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError("opts.image must be PNG bytes, base64 text or a data URL")
    value = bytes(value)
    if value.startswith(b"\x89PNG"):
        return value
    text = value.split(b",", 1)[1] if value.startswith(b"data:") else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("opts.image is neither PNG bytes nor valid base64 / a data URL") from None


def _generation_inputs(opts: dict, img2img: bool) -> dict:
    opts = lua_options(opts)
    version = opts.get("sd_version")
    version = version.decode("utf-8", "replace") if isinstance(version, bytes) else version
    if version is not None and str(version) not in ("1.5", "v1.5"):
        raise ValueError(f"sd_version {version} is not supported (only Stable Diffusion 1.5)")
    prompt = _text_option(opts, "prompt")
    if prompt is None:
        raise ValueError("opts.prompt is required")
    inputs = {
        "prompt": prompt,
        "negative_prompt": _text_option(opts, "negative_prompt"),
        "steps": _int_option(opts, "steps", 30, 1, 1000),
        "guidance_scale": _number_option(opts, "guidance_scale", 7.5, 0.0, 100.0),
        "seed": _int_option(opts, "seed", 0, 0, 2**64 - 1),  # in a process the bridge defaults it from the message
        "height": _int_option(opts, "height", 512, 8, 2048),
        "width": _int_option(opts, "width", 512, 8, 2048),
        "scheduler": _text_option(opts, "scheduler"),
        "num_images_per_prompt": _int_option(opts, "num_images_per_prompt", 1, 1, 16),
    }
    if inputs["scheduler"] is not None:
        make_scheduler(inputs["scheduler"])  # an unknown name fails before any model is loaded
    if img2img:
        if opts.get("image") is None:
            raise ValueError("opts.image is required (PNG bytes, base64 or a data URL)")
        import base64

        inputs["image"] = base64.b64encode(image_bytes(opts["image"])).decode("ascii")
        inputs["strength"] = _number_option(opts, "strength", 0.8, 0.0, 1.0)
        del inputs["height"], inputs["width"]  # the image's size
    return inputs


def txt2img_inputs(opts: dict) -> dict:
    return _generation_inputs(opts, img2img=False)


def img2img_inputs(opts: dict) -> dict:
    return _generation_inputs(opts, img2img=True)


def generate(pipe: StableDiffusionPipeline, inputs: dict, mode: str) -> tuple[list[bytes], int]:
    """(the PNG bytes of each image, multiply-adds) for txt2img or img2img inputs."""
    options = {key: value for key, value in inputs.items() if key not in ("steps", "image")}
    if "image" in inputs:
        import base64
        import io

        from PIL import Image, UnidentifiedImageError

        try:
            image = Image.open(io.BytesIO(base64.b64decode(inputs["image"]))).convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise ValueError("opts.image is not a readable image") from None
        if image.width % pipe.vae_scale_factor or image.height % pipe.vae_scale_factor:
            # resampling goes through the platform's libm: only sizes that need none give the same bits everywhere
            raise ValueError(f"opts.image is {image.width}x{image.height}: both sides must be multiples of {pipe.vae_scale_factor}")
        options["image"] = image
    result = pipe(**options, num_inference_steps=inputs["steps"], progress=False, mode=mode)
    return [result.png(i) for i in range(len(result.pixels))], result.multiply_adds


def generate_reply(images: list, opts: dict) -> list:
    """One image: its data URL (with ``store = true``: its weave id); several: a list of them."""
    import base64

    values = images if opts.get("store") else [_DATA_URL + base64.b64encode(png).decode("ascii") for png in images]
    return [values[0] if len(values) == 1 else values]
