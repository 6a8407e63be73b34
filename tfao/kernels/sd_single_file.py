"""The original (CompVis / LDM) Stable Diffusion single-file checkpoint read under diffusers' names, and the
SD1.5 configuration such files need (head counts cannot be read from weight shapes).

``model.diffusion_model.*`` is the UNet, ``first_stage_model.*`` the VAE (its mid-block attention as 1x1
convolutions, which the VAE's linear reader accepts), ``cond_stage_model.transformer.text_model.*`` the CLIP
text encoder under transformers' own names. Other entries (the DDPM schedule buffers, ``model_ema.*``, a
training loss) are dropped. The block numbering is derived from the configs, so any UNet/VAE config maps.
"""

from __future__ import annotations

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."

SD15_UNET_CONFIG = {
    "_class_name": "UNet2DConditionModel", "sample_size": 64, "in_channels": 4, "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "cross_attention_dim": 768, "attention_head_dim": 8, "norm_num_groups": 32, "norm_eps": 1e-5, "act_fn": "silu",
    "flip_sin_to_cos": True, "freq_shift": 0, "downsample_padding": 1, "mid_block_scale_factor": 1,
    "center_input_sample": False,
}
SD15_VAE_CONFIG = {
    "_class_name": "AutoencoderKL", "sample_size": 512, "in_channels": 3, "out_channels": 3, "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "norm_num_groups": 32, "act_fn": "silu",
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
SD15_TEXT_ENCODER_CONFIG = {  # CLIP ViT-L/14's text tower, as SD1.5's text_encoder/config.json gives it
    "architectures": ["CLIPTextModel"], "model_type": "clip_text_model", "vocab_size": 49408, "hidden_size": 768,
    "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12, "max_position_embeddings": 77,
    "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "projection_dim": 768, "bos_token_id": 0, "eos_token_id": 2,
    "pad_token_id": 1,
}

_RESNET_PARTS = {"in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
                 "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut"}
_VAE_RESNET_PARTS = {"nin_shortcut": "conv_shortcut"}
_VAE_ATTENTION_PARTS = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}


def _per_level(value, levels: int) -> list[int]:
    return list(value) if isinstance(value, (list, tuple)) else [value] * levels


def unet_blocks(config: dict) -> dict[str, tuple[str, dict]]:
    """LDM block prefix -> (diffusers prefix, renames of the names inside the block)."""
    levels = len(config["block_out_channels"])
    layers = _per_level(config.get("layers_per_block", 2), levels)
    blocks = {"time_embed.0": ("time_embedding.linear_1", {}), "time_embed.2": ("time_embedding.linear_2", {}),
              "input_blocks.0.0": ("conv_in", {}), "out.0": ("conv_norm_out", {}), "out.2": ("conv_out", {}),
              "middle_block.0": ("mid_block.resnets.0", _RESNET_PARTS), "middle_block.1": ("mid_block.attentions.0", {}),
              "middle_block.2": ("mid_block.resnets.1", _RESNET_PARTS)}
    n = 1
    for i, kind in enumerate(config["down_block_types"]):
        for j in range(layers[i]):
            blocks[f"input_blocks.{n}.0"] = (f"down_blocks.{i}.resnets.{j}", _RESNET_PARTS)
            if kind.startswith("CrossAttn"):
                blocks[f"input_blocks.{n}.1"] = (f"down_blocks.{i}.attentions.{j}", {})
            n += 1
        if i < levels - 1:
            blocks[f"input_blocks.{n}.0.op"] = (f"down_blocks.{i}.downsamplers.0.conv", {})
            n += 1
    n = 0
    for i, kind in enumerate(config["up_block_types"]):
        count = layers[levels - 1 - i] + 1
        for j in range(count):
            blocks[f"output_blocks.{n}.0"] = (f"up_blocks.{i}.resnets.{j}", _RESNET_PARTS)
            upsampler = 1
            if kind.startswith("CrossAttn"):
                blocks[f"output_blocks.{n}.1"] = (f"up_blocks.{i}.attentions.{j}", {})
                upsampler = 2
            if j == count - 1 and i < levels - 1:
                blocks[f"output_blocks.{n}.{upsampler}.conv"] = (f"up_blocks.{i}.upsamplers.0.conv", {})
            n += 1
    return blocks


def vae_blocks(config: dict) -> dict[str, tuple[str, dict]]:
    """LDM VAE block prefix -> (diffusers prefix, renames inside); the decoder counts its levels backwards."""
    levels = len(config["block_out_channels"])
    layers = config.get("layers_per_block", 1)
    blocks = {name: (name, {}) for name in ("quant_conv", "post_quant_conv")}
    for part in ("encoder", "decoder"):
        blocks.update({f"{part}.conv_in": (f"{part}.conv_in", {}), f"{part}.conv_out": (f"{part}.conv_out", {}),
                       f"{part}.norm_out": (f"{part}.conv_norm_out", {}),
                       f"{part}.mid.block_1": (f"{part}.mid_block.resnets.0", _VAE_RESNET_PARTS),
                       f"{part}.mid.block_2": (f"{part}.mid_block.resnets.1", _VAE_RESNET_PARTS),
                       f"{part}.mid.attn_1": (f"{part}.mid_block.attentions.0", _VAE_ATTENTION_PARTS)})
    for i in range(levels):
        for j in range(layers):
            blocks[f"encoder.down.{i}.block.{j}"] = (f"encoder.down_blocks.{i}.resnets.{j}", _VAE_RESNET_PARTS)
        for j in range(layers + 1):
            blocks[f"decoder.up.{levels - 1 - i}.block.{j}"] = (f"decoder.up_blocks.{i}.resnets.{j}", _VAE_RESNET_PARTS)
        if i < levels - 1:
            blocks[f"encoder.down.{i}.downsample.conv"] = (f"encoder.down_blocks.{i}.downsamplers.0.conv", {})
            blocks[f"decoder.up.{levels - 1 - i}.upsample.conv"] = (f"decoder.up_blocks.{i}.upsamplers.0.conv", {})
    return blocks


def _longest_prefix(parts: list[str], table: dict) -> int:
    """How many leading dotted parts of a name form the longest key of ``table`` (0 when none does)."""
    for length in range(len(parts) - 1, 0, -1):
        if ".".join(parts[:length]) in table:
            return length
    return 0


def _mapped(name: str, blocks: dict[str, tuple[str, dict]]) -> str | None:
    parts = name.split(".")
    length = _longest_prefix(parts, blocks)
    if not length:
        return None
    prefix, inner = blocks[".".join(parts[:length])]
    rest = parts[length:]
    inner_length = _longest_prefix(rest, inner)
    if inner_length:
        rest = [inner[".".join(rest[:inner_length])], *rest[inner_length:]]
    return ".".join([prefix, *rest])


def _inverted(blocks: dict[str, tuple[str, dict]]) -> dict[str, tuple[str, dict]]:
    return {target: (source, {new: old for old, new in inner.items()}) for source, (target, inner) in blocks.items()}


class SingleFileNames:
    """Maps a single file's tensor names to ``unet.*``, ``vae.*`` and ``text_encoder.*`` diffusers names;
    ``original`` maps back (to write single files)."""

    def __init__(self, unet_config: dict, vae_config: dict):
        self.unet_blocks = unet_blocks(unet_config)
        self.vae_blocks = vae_blocks(vae_config)
        self._inverse = {"unet": (UNET_PREFIX, _inverted(self.unet_blocks)),
                         "vae": (VAE_PREFIX, _inverted(self.vae_blocks))}

    def original(self, name: str) -> str | None:
        """The single-file name of a ``unet.*``, ``vae.*`` or ``text_encoder.*`` diffusers name."""
        component, _, rest = name.partition(".")
        if component == "text_encoder":
            return TEXT_ENCODER_PREFIX + (rest if rest.startswith("text_model.") else "text_model." + rest)
        if component not in self._inverse:
            return None
        prefix, inverse = self._inverse[component]
        mapped = _mapped(rest, inverse)
        return mapped and prefix + mapped

    def __call__(self, name: str) -> str | None:
        if name.startswith(UNET_PREFIX):
            mapped = _mapped(name[len(UNET_PREFIX):], self.unet_blocks)
            return mapped and f"unet.{mapped}"
        if name.startswith(VAE_PREFIX):
            mapped = _mapped(name[len(VAE_PREFIX):], self.vae_blocks)
            return mapped and f"vae.{mapped}"
        if name.startswith(TEXT_ENCODER_PREFIX + "text_model."):
            return "text_encoder." + name[len(TEXT_ENCODER_PREFIX):]
        return None
