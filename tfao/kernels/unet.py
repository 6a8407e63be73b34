"""diffusers' ``UNet2DConditionModel`` (Stable Diffusion 1.x and 2.x) built from its config.json, on ``ops`` and
the image primitives of ``conv``. Tensors are channels-last inside; the model takes and returns [N, C, H, W].

Also the building blocks the VAE shares: ResNet blocks, attention, and readers of conv / norm / linear
weights that accept a 1x1 convolution wherever a linear layer is meant (the original checkpoints store
projections that way).
"""

from __future__ import annotations

import numpy as np

from . import ops
from .conv import Conv2d, GroupNorm, attention, geglu, to_channels_first, to_channels_last, upsample_nearest2x
from .diffusers_folder import read_model_folder
from .networks import nbytes, share_prepared
from .parallel import over_batch
from .weights import WeightError, Weights

_LN_10000 = 9.210340371976184  # log(10000): the timestep embedding's maximum period
_SUPPORTED_BLOCKS = {"CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"}


def load_conv(weights: Weights, name: str, cin: int, cout: int, kernel: int = 3, stride: int = 1, padding=None) -> Conv2d:
    padding = (kernel - 1) // 2 if padding is None else padding
    return Conv2d(weights.get(f"{name}.weight", (cout, cin, kernel, kernel)), weights.get(f"{name}.bias", (cout,)),
                  stride=stride, padding=padding)


def load_linear(weights: Weights, name: str, cin: int, cout: int, bias: bool = True) -> ops.Linear:
    """A linear layer stored as [out, in] or as a 1x1 convolution [out, in, 1, 1]."""
    key = f"{name}.weight"
    weight = weights.get(key)
    if weight.shape not in ((cout, cin), (cout, cin, 1, 1)):
        raise WeightError(f"tensor {weights.key(key)} has shape {weight.shape}, expected {(cout, cin)} or {(cout, cin, 1, 1)}")
    return ops.Linear(weight.reshape(cout, cin), weights.get(f"{name}.bias", (cout,)) if bias else None)


def load_group_norm(weights: Weights, name: str, channels: int, groups: int, eps: float) -> GroupNorm:
    return GroupNorm(weights.get(f"{name}.weight", (channels,)), weights.get(f"{name}.bias", (channels,)), groups, eps)


def load_layer_norm(weights: Weights, name: str, width: int) -> tuple[np.ndarray, np.ndarray]:
    return weights.get(f"{name}.weight", (width,)), weights.get(f"{name}.bias", (width,))


class ResnetBlock:
    """GroupNorm, SiLU, conv, (+ projected time embedding), GroupNorm, SiLU, conv, plus the (1x1) shortcut."""

    def __init__(self, weights: Weights, cin: int, cout: int, groups: int, eps: float, temb: int | None = None,
                 output_scale: float = 1.0):
        self.norm1 = load_group_norm(weights, "norm1", cin, groups, eps)
        self.conv1 = load_conv(weights, "conv1", cin, cout)
        self.time_emb_proj = None if temb is None else load_linear(weights, "time_emb_proj", temb, cout)
        self.norm2 = load_group_norm(weights, "norm2", cout, groups, eps)
        self.conv2 = load_conv(weights, "conv2", cout, cout)
        self.shortcut = load_linear(weights, "conv_shortcut", cin, cout) if cin != cout else None
        self.output_scale = np.float32(output_scale)

    def __call__(self, x: np.ndarray, temb_act: np.ndarray | None, mode: str) -> np.ndarray:
        h = self.conv1(self.norm1(x, mode, silu=True), mode=mode)  # [N, H, W, out]
        if self.time_emb_proj is not None:
            h += self.time_emb_proj(temb_act, mode=mode)[:, None, None, :]
        h = self.conv2(self.norm2(h, mode, silu=True), mode=mode)
        out = (x if self.shortcut is None else self.shortcut(x, mode=mode)) + h
        return out if self.output_scale == 1 else out / self.output_scale


class Attention:
    """Multi-head attention of ``x`` [N, T, D] over ``context`` [N, S, Dc] (itself when None)."""

    def __init__(self, weights: Weights, dim: int, heads: int, head_dim: int, context_dim: int | None = None,
                 bias: bool = False, names=("to_q", "to_k", "to_v", "to_out.0")):
        inner, context_dim = heads * head_dim, context_dim or dim
        q, k, v, out = names
        self.heads = heads
        self.to_q = load_linear(weights, q, dim, inner, bias)
        self.to_k = load_linear(weights, k, context_dim, inner, bias)
        self.to_v = load_linear(weights, v, context_dim, inner, bias)
        self.to_out = load_linear(weights, out, inner, dim)

    def __call__(self, x: np.ndarray, context: np.ndarray | None, mode: str) -> np.ndarray:
        context = x if context is None else context
        mixed = attention(self.to_q(x, mode=mode), self.to_k(context, mode=mode), self.to_v(context, mode=mode),
                          self.heads, mode=mode)  # [N, T, inner]
        return self.to_out(mixed, mode=mode)


class _TransformerBlock:
    """Self-attention, cross-attention and a GEGLU feed-forward, each after a LayerNorm, each residual."""

    def __init__(self, weights: Weights, dim: int, heads: int, context_dim: int):
        head_dim = dim // heads
        self.norm1, self.norm2, self.norm3 = (load_layer_norm(weights, f"norm{i}", dim) for i in (1, 2, 3))
        self.attn1 = Attention(weights.pp("attn1"), dim, heads, head_dim)
        self.attn2 = Attention(weights.pp("attn2"), dim, heads, head_dim, context_dim)
        self.ff_in = load_linear(weights, "ff.net.0.proj", dim, 8 * dim)
        self.ff_out = load_linear(weights, "ff.net.2", 4 * dim, dim)

    def __call__(self, x, context, mode):
        x = x + self.attn1(ops.layer_norm(x, *self.norm1, 1e-5, mode=mode), None, mode)
        x = x + self.attn2(ops.layer_norm(x, *self.norm2, 1e-5, mode=mode), context, mode)
        inner = geglu(self.ff_in(ops.layer_norm(x, *self.norm3, 1e-5, mode=mode), mode=mode), mode=mode)  # [N, T, 4D]
        return x + self.ff_out(inner, mode=mode)


class _Transformer2D:
    """GroupNorm, projection in, transformer blocks over the pixels as tokens, projection out, residual.

    ``proj_in``/``proj_out`` are 1x1 convolutions (SD1.x) or linear layers (SD2, ``use_linear_projection``):
    on channels-last pixels both are the same product.
    """

    def __init__(self, weights: Weights, channels: int, heads: int, context_dim: int, groups: int, layers: int):
        self.norm = load_group_norm(weights, "norm", channels, groups, 1e-6)
        self.proj_in = load_linear(weights, "proj_in", channels, channels)
        self.blocks = [_TransformerBlock(weights.pp("transformer_blocks").pp(i), channels, heads, context_dim)
                       for i in range(layers)]
        self.proj_out = load_linear(weights, "proj_out", channels, channels)

    def __call__(self, x, context, mode):
        batch, height, width, channels = x.shape
        h = self.proj_in(self.norm(x, mode), mode=mode).reshape(batch, height * width, channels)  # [N, HW, C]
        for block in self.blocks:
            h = block(h, context, mode)
        return x + self.proj_out(h, mode=mode).reshape(x.shape)  # [N, H, W, C]


def _per_block(value, count: int) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value] * count


def _check_supported(config: dict) -> None:
    only_supported = {  # settings this implementation covers only at their default value
        "class_embed_type": None, "addition_embed_type": None, "time_cond_proj_dim": None, "encoder_hid_dim": None,
        "dual_cross_attention": False, "resnet_time_scale_shift": "default", "time_embedding_type": "positional",
        "attention_type": "default", "act_fn": "silu", "time_embedding_act_fn": None, "timestep_post_act": None,
        "mid_block_type": "UNetMidBlock2DCrossAttn", "conv_in_kernel": 3, "conv_out_kernel": 3,
        "cross_attention_norm": None, "resnet_skip_time_act": False,
    }
    for key, supported in only_supported.items():
        if config.get(key, supported) != supported:
            raise ValueError(f"unsupported UNet setting {key}={config[key]!r}")
    if any(_per_block(config.get("only_cross_attention", False), 1)):
        raise ValueError("unsupported UNet setting only_cross_attention")
    for kind in [*config["down_block_types"], *config["up_block_types"]]:
        if kind not in _SUPPORTED_BLOCKS:
            raise ValueError(f"unsupported UNet block type {kind!r}")


class UNet2DConditionModel:
    """``unet(sample [N, C, H, W], timestep, encoder_hidden_states [N, S, D])`` -> noise prediction [N, C', H, W]."""

    def __init__(self, config: dict, weights: Weights, prepared: ops.PreparedStore | None = None):
        _check_supported(config)
        self.config = config
        channels = list(config.get("block_out_channels", (320, 640, 1280, 1280)))
        levels = len(channels)
        layers = _per_block(config.get("layers_per_block", 2), levels)
        heads = _per_block(config.get("num_attention_heads") or config.get("attention_head_dim", 8), levels)
        context_dims = _per_block(config.get("cross_attention_dim", 1280), levels)
        depths = _per_block(config.get("transformer_layers_per_block", 1), levels)
        groups, eps = config.get("norm_num_groups", 32), float(config.get("norm_eps", 1e-5))
        self.flip_sin_to_cos = config.get("flip_sin_to_cos", True)
        self.freq_shift = config.get("freq_shift", 0)
        self.center_input_sample = config.get("center_input_sample", False)
        self.time_channels = channels[0]
        temb = config.get("time_embedding_dim") or 4 * channels[0]

        self.conv_in = load_conv(weights, "conv_in", config.get("in_channels", 4), channels[0])
        self.time_linear_1 = load_linear(weights, "time_embedding.linear_1", channels[0], temb)
        self.time_linear_2 = load_linear(weights, "time_embedding.linear_2", temb, temb)

        def transformer(w, width, level):
            return _Transformer2D(w, width, heads[level], context_dims[level], groups, depths[level])

        self.down_blocks = []
        for i, kind in enumerate(config["down_block_types"]):
            w = weights.pp("down_blocks").pp(i)
            cin = channels[max(i - 1, 0)]
            resnets = [ResnetBlock(w.pp("resnets").pp(j), cin if j == 0 else channels[i], channels[i], groups, eps, temb)
                       for j in range(layers[i])]
            attentions = ([transformer(w.pp("attentions").pp(j), channels[i], i) for j in range(layers[i])]
                          if kind.startswith("CrossAttn") else None)
            downsample = (load_conv(w, "downsamplers.0.conv", channels[i], channels[i], stride=2,
                                    padding=config.get("downsample_padding", 1) or (0, 1, 0, 1))
                          if i < levels - 1 else None)
            self.down_blocks.append((resnets, attentions, downsample))

        w = weights.pp("mid_block")
        mid_scale = config.get("mid_block_scale_factor", 1)
        self.mid_resnets = [ResnetBlock(w.pp("resnets").pp(j), channels[-1], channels[-1], groups, eps, temb, mid_scale)
                            for j in range(2)]
        self.mid_attention = transformer(w.pp("attentions").pp(0), channels[-1], levels - 1)

        self.up_blocks = []
        reversed_channels = channels[::-1]
        for i, kind in enumerate(config["up_block_types"]):
            w = weights.pp("up_blocks").pp(i)
            level = levels - 1 - i
            cout, previous = reversed_channels[i], reversed_channels[max(i - 1, 0)]
            cin = reversed_channels[min(i + 1, levels - 1)]
            count = layers[level] + 1
            resnets = [ResnetBlock(w.pp("resnets").pp(j), (previous if j == 0 else cout) + (cin if j == count - 1 else cout),
                                   cout, groups, eps, temb) for j in range(count)]
            attentions = ([transformer(w.pp("attentions").pp(j), cout, level) for j in range(count)]
                          if kind.startswith("CrossAttn") else None)
            upsample = load_conv(w, "upsamplers.0.conv", cout, cout) if i < levels - 1 else None
            self.up_blocks.append((resnets, attentions, upsample))

        self.norm_out = load_group_norm(weights, "conv_norm_out", channels[0], groups, eps)
        self.conv_out = load_conv(weights, "conv_out", channels[0], config.get("out_channels", 4))
        self.downscale = 2 ** (levels - 1)
        share_prepared(self, prepared)

    @classmethod
    def from_pretrained(cls, folder, variant: str | None = None, prepared: ops.PreparedStore | None = None):
        """Load a diffusers ``unet/`` folder: config.json + diffusion_pytorch_model[.variant].safetensors."""
        return cls(*read_model_folder(folder, "diffusion_pytorch_model", variant), prepared)

    def nbytes(self) -> int:
        return nbytes(self)

    def timestep_embedding(self, timesteps: np.ndarray, mode: str) -> np.ndarray:
        """Sinusoidal embedding of float32 timesteps [N] -> [N, C0], in float32 steps as diffusers computes it."""
        half = self.time_channels // 2
        exponent = np.float32(-_LN_10000) * np.arange(half, dtype=np.float32) / np.float32(half - self.freq_shift)
        angles = timesteps[:, None] * ops.exp(exponent, mode=mode)[None, :]  # [N, half]
        sin, cos = ops.sin(angles, mode=mode), ops.cos(angles, mode=mode)
        embedding = np.concatenate([cos, sin] if self.flip_sin_to_cos else [sin, cos], axis=-1)  # [N, 2 half]
        return np.pad(embedding, ((0, 0), (0, self.time_channels % 2)))

    def __call__(self, sample, timestep, encoder_hidden_states, mode: str | None = None) -> np.ndarray:
        mode = ops.resolve_mode(mode)
        sample = np.asarray(sample, dtype=np.float32)
        batch, _, height, width = sample.shape
        if height % self.downscale or width % self.downscale:
            raise ValueError(f"sample height and width must be multiples of {self.downscale}, got {height}x{width}")
        context = np.asarray(encoder_hidden_states, dtype=np.float32)
        if context.shape[0] != batch:
            raise ValueError(f"encoder_hidden_states has batch {context.shape[0]}, sample has {batch}")
        timesteps = np.broadcast_to(np.asarray(timestep, dtype=np.float32).reshape(-1), (batch,))
        if not np.all(np.isfinite(timesteps)):
            raise ValueError("timestep must be finite")
        # CFG's batch of 2 split in either mode: a fast 512 px step took 0.85 of the time too
        return over_batch(lambda rows: self._forward(sample[rows], timesteps[rows], context[rows], mode), batch)

    def _forward(self, sample, timesteps, context, mode):
        temb = self.time_linear_1(self.timestep_embedding(timesteps, mode), mode=mode)  # [N, temb]
        temb = self.time_linear_2(ops.silu(temb, mode=mode), mode=mode)
        temb_act = ops.silu(temb, mode=mode)  # every ResNet block projects SiLU(temb)

        x = to_channels_last(2 * sample - 1 if self.center_input_sample else sample)  # [N, H, W, C]
        x = self.conv_in(x, mode=mode)
        skips = [x]
        for resnets, attentions, downsample in self.down_blocks:
            for j, resnet in enumerate(resnets):
                x = resnet(x, temb_act, mode)
                if attentions:
                    x = attentions[j](x, context, mode)
                skips.append(x)
            if downsample:
                x = downsample(x, mode=mode)  # [N, H/2, W/2, C]
                skips.append(x)
        x = self.mid_resnets[0](x, temb_act, mode)
        x = self.mid_attention(x, context, mode)
        x = self.mid_resnets[1](x, temb_act, mode)
        for resnets, attentions, upsample in self.up_blocks:
            for j, resnet in enumerate(resnets):
                x = resnet(np.concatenate([x, skips.pop()], axis=-1), temb_act, mode)  # skip channels appended
                if attentions:
                    x = attentions[j](x, context, mode)
            if upsample:
                x = upsample(upsample_nearest2x(x), mode=mode)  # [N, 2H, 2W, C]
        x = self.conv_out(self.norm_out(x, mode, silu=True), mode=mode)
        return to_channels_first(x)

