"""Tiny random Stable Diffusion pipelines saved by diffusers (folder layout), for the SD tests.

Two-level UNet and VAE (a VAE scale factor of 2), so odd image sizes such as 32x24 px are valid; the
UNet's and the VAE decoder's output layers are scaled up so that the image depends strongly on every
step (a scheduler mistake then shows in the pixels)."""

import json

import numpy as np

from tfao.kernels.schedulers import SD15_SCHEDULER_CONFIG

TINY_UNET = dict(sample_size=16, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=16, attention_head_dim=2, norm_num_groups=4)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
                sample_size=32)
TINY_CLIP = dict(hidden_size=16, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                 hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2)  # SD1.5's legacy special ids
SD15_SCHEDULER = {key: value for key, value in SD15_SCHEDULER_CONFIG.items() if key != "_class_name"}


def shared_data(name: str):
    """A folder of the reference data in "shared/data" beside the checkout (or beside a folder above it),
    such as the real CLIP tokenizer ("clip-tokenizer"); None where there is none."""
    from pathlib import Path

    return next((folder / "shared" / "data" / name for folder in Path(__file__).resolve().parents
                 if (folder / "shared" / "data" / name).is_dir()), None)


def byte_level_alphabet() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for bytes (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), ord("\u00ff") + 1)]
    others = [b for b in range(256) if b not in printable]
    table = dict(zip(printable, printable)) | {b: 256 + i for i, b in enumerate(others)}
    return [chr(table[b]) for b in range(256)]


def write_tiny_bpe(folder):
    """A byte-level BPE vocabulary in CLIP's format: every byte alone and word-final, a few merges."""
    chars = byte_level_alphabet()
    merges = ["c a", "ca t</w>", "p h", "o t", "ph ot", "phot o</w>", "d o", "do g</w>"]
    tokens = chars + [c + "</w>" for c in chars] + [m.replace(" ", "") for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder, len(tokens)


def build_reference(folder, seed=0):
    """A diffusers StableDiffusionPipeline of tiny random parts, saved in the real folder layout."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab_folder, vocab_size = write_tiny_bpe(folder / "bpe")
    tokenizer = CLIPTokenizer(str(vocab_folder / "vocab.json"), str(vocab_folder / "merges.txt"), model_max_length=77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, **TINY_CLIP)).eval()
    unet = UNet2DConditionModel(**TINY_UNET).eval()
    vae = AutoencoderKL(**TINY_VAE).eval()
    with torch.no_grad():
        unet.conv_out.weight *= 30  # noise predictions of std ~1, like a trained UNet's
        unet.conv_out.bias *= 30
        vae.decoder.conv_out.weight *= 3  # images that use the whole [-1, 1] range
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=PNDMScheduler.from_config(SD15_SCHEDULER), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder / "sd", safe_serialization=True)
    # the real file's keys only: schedulers built from it take their own defaults for the rest
    real = {**SD15_SCHEDULER_CONFIG, "_diffusers_version": "0.6.0"}
    (folder / "sd" / "scheduler" / "scheduler_config.json").write_text(json.dumps(real, indent=2))
    pipe = StableDiffusionPipeline.from_pretrained(folder / "sd", safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe, folder / "sd"


def initial_latents(batch, height, width, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, 4, height // 2, width // 2)).astype(np.float32)
