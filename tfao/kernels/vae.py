"""diffusers' ``AutoencoderKL`` (the Stable Diffusion VAE) built from its config.json, on the UNet's building blocks.

``vae.encode(images)`` gives the latent distribution's mean and log-variance, ``vae.decode(z)`` the image;
both take and return [N, C, H, W] float32. ``z`` is the latent already divided by ``scaling_factor``, as in
diffusers. The mid-block attention reads the new key names (``to_q``...) and the legacy
``query/key/value/proj_attn`` of 2022 checkpoints.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .conv import to_channels_first, to_channels_last, upsample_nearest2x
from .diffusers_folder import read_model_folder
from .networks import nbytes, share_prepared
from .unet import Attention, ResnetBlock, load_conv, load_group_norm, load_linear
from .weights import Weights

_EPS = 1e-6  # every VAE norm
_LEGACY_ATTENTION_NAMES = ("query", "key", "value", "proj_attn")
_DEFAULT_SCALING_FACTOR = 0.18215  # SD1.5's vae/config.json has no scaling_factor key
_LOGVAR_RANGE = (-30.0, 20.0)  # diffusers' DiagonalGaussianDistribution clamp


class _MidAttention:
    """GroupNorm, single-head attention over the pixels, residual."""

    def __init__(self, weights: Weights, channels: int, groups: int, head_dim: int):
        names = _LEGACY_ATTENTION_NAMES if weights.has("query.weight") else ("to_q", "to_k", "to_v", "to_out.0")
        self.norm = load_group_norm(weights, "group_norm", channels, groups, _EPS)
        self.attention = Attention(weights, channels, channels // head_dim, head_dim, bias=True, names=names)

    def __call__(self, x, mode):
        batch, height, width, channels = x.shape
        tokens = self.norm(x, mode).reshape(batch, height * width, channels)  # [N, HW, C]
        return x + self.attention(tokens, None, mode).reshape(x.shape)


class _MidBlock:
    def __init__(self, weights: Weights, channels: int, groups: int, attention: bool):
        self.resnets = [ResnetBlock(weights.pp("resnets").pp(j), channels, channels, groups, _EPS) for j in range(2)]
        self.attention = _MidAttention(weights.pp("attentions").pp(0), channels, groups, channels) if attention else None

    def __call__(self, x, mode):
        x = self.resnets[0](x, None, mode)
        if self.attention:
            x = self.attention(x, mode)
        return self.resnets[1](x, None, mode)


class _Encoder:
    def __init__(self, weights: Weights, config: dict, channels: list[int], groups: int, layers: int, attention: bool):
        levels = len(channels)
        self.conv_in = load_conv(weights, "conv_in", config.get("in_channels", 3), channels[0])
        self.down_blocks = []
        for i in range(levels):
            w = weights.pp("down_blocks").pp(i)
            resnets = [ResnetBlock(w.pp("resnets").pp(j), channels[max(i - 1, 0)] if j == 0 else channels[i], channels[i],
                                   groups, _EPS) for j in range(layers)]
            downsample = (load_conv(w, "downsamplers.0.conv", channels[i], channels[i], stride=2, padding=(0, 1, 0, 1))
                          if i < levels - 1 else None)
            self.down_blocks.append((resnets, downsample))
        self.mid_block = _MidBlock(weights.pp("mid_block"), channels[-1], groups, attention)
        self.norm_out = load_group_norm(weights, "conv_norm_out", channels[-1], groups, _EPS)
        self.conv_out = load_conv(weights, "conv_out", channels[-1], 2 * config.get("latent_channels", 4))

    def __call__(self, x, mode):
        x = self.conv_in(x, mode=mode)
        for resnets, downsample in self.down_blocks:
            for resnet in resnets:
                x = resnet(x, None, mode)
            if downsample:
                x = downsample(x, mode=mode)  # [N, H/2, W/2, C]
        x = self.mid_block(x, mode)
        return self.conv_out(self.norm_out(x, mode, silu=True), mode=mode)  # [N, h, w, 2 latent]


class _Decoder:
    def __init__(self, weights: Weights, config: dict, channels: list[int], groups: int, layers: int, attention: bool):
        levels, reversed_channels = len(channels), channels[::-1]
        self.conv_in = load_conv(weights, "conv_in", config.get("latent_channels", 4), channels[-1])
        self.mid_block = _MidBlock(weights.pp("mid_block"), channels[-1], groups, attention)
        self.up_blocks = []
        for i in range(levels):
            w = weights.pp("up_blocks").pp(i)
            cout, cin = reversed_channels[i], reversed_channels[max(i - 1, 0)]
            resnets = [ResnetBlock(w.pp("resnets").pp(j), cin if j == 0 else cout, cout, groups, _EPS)
                       for j in range(layers + 1)]
            upsample = load_conv(w, "upsamplers.0.conv", cout, cout) if i < levels - 1 else None
            self.up_blocks.append((resnets, upsample))
        self.norm_out = load_group_norm(weights, "conv_norm_out", channels[0], groups, _EPS)
        self.conv_out = load_conv(weights, "conv_out", channels[0], config.get("out_channels", 3))

    def __call__(self, z, mode):
        x = self.mid_block(self.conv_in(z, mode=mode), mode)
        for resnets, upsample in self.up_blocks:
            for resnet in resnets:
                x = resnet(x, None, mode)
            if upsample:
                x = upsample(upsample_nearest2x(x), mode=mode)  # [N, 2H, 2W, C]
        return self.conv_out(self.norm_out(x, mode, silu=True), mode=mode)  # [N, H, W, 3]


class AutoencoderKL:
    """``vae.encode(images)`` -> (mean, logvar); ``vae.decode(z)`` -> images; all [N, C, H, W]."""

    def __init__(self, config: dict, weights: Weights, prepared: ops.PreparedStore | None = None):
        for key in ("down_block_types", "up_block_types"):
            kinds = set(config.get(key, ()))
            if kinds - {"DownEncoderBlock2D", "UpDecoderBlock2D"}:
                raise ValueError(f"unsupported VAE block types {sorted(kinds)}")
        if config.get("act_fn", "silu") != "silu":
            raise ValueError(f"unsupported VAE act_fn {config['act_fn']!r}")
        self.config = config
        channels = list(config.get("block_out_channels", (64,)))
        groups, layers = config.get("norm_num_groups", 32), config.get("layers_per_block", 1)
        attention = config.get("mid_block_add_attention", True)
        latent = config.get("latent_channels", 4)
        self.scaling_factor = float(config.get("scaling_factor") or _DEFAULT_SCALING_FACTOR)
        self.encoder = _Encoder(weights.pp("encoder"), config, channels, groups, layers, attention)
        self.decoder = _Decoder(weights.pp("decoder"), config, channels, groups, layers, attention)
        self.quant_conv = load_linear(weights, "quant_conv", 2 * latent, 2 * latent) if config.get("use_quant_conv", True) else None
        self.post_quant_conv = load_linear(weights, "post_quant_conv", latent, latent) if config.get("use_post_quant_conv", True) else None
        self.downscale = 2 ** (len(channels) - 1)
        share_prepared(self, prepared)

    @classmethod
    def from_pretrained(cls, folder, variant: str | None = None, prepared: ops.PreparedStore | None = None):
        """Load a diffusers ``vae/`` folder: config.json + diffusion_pytorch_model[.variant].safetensors."""
        return cls(*read_model_folder(folder, "diffusion_pytorch_model", variant), prepared)

    def nbytes(self) -> int:
        return nbytes(self)

    def encode(self, images, mode: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Images [N, 3, H, W] in [-1, 1] -> the latent distribution's (mean, logvar), each [N, latent, H/8, W/8]."""
        mode = ops.resolve_mode(mode)
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4 or images.shape[2] % self.downscale or images.shape[3] % self.downscale:
            raise ValueError(f"images must be [N, C, H, W] with H and W multiples of {self.downscale}, got {images.shape}")
        moments = self.encoder(to_channels_last(images), mode)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments, mode=mode)
        mean, logvar = np.split(to_channels_first(moments), 2, axis=1)
        return mean, np.clip(logvar, *_LOGVAR_RANGE)

    def decode(self, z, mode: str | None = None) -> np.ndarray:
        """Latents [N, latent, h, w] (already divided by ``scaling_factor``) -> images [N, 3, 8h, 8w]."""
        mode = ops.resolve_mode(mode)
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 4:
            raise ValueError(f"latents must be [N, C, H, W], got shape {z.shape}")
        x = to_channels_last(z)
        if self.post_quant_conv is not None:
            x = self.post_quant_conv(x, mode=mode)
        return to_channels_first(self.decoder(x, mode))
