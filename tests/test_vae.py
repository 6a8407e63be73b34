"""AutoencoderKL against diffusers on a tiny random config with SD1.5's block types, in both math modes."""

import hashlib
import json

import diffusers
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tfao.kernels.modes import KERNELS_VERSION
from tfao.kernels.vae import AutoencoderKL

MODES = ["exact", "fast"]
# exact-mode output hashes by kernels version (a deliberate change of bits bumps KERNELS_VERSION)
GOLDEN_SHA256 = {1: "c66c8172dbc62d391fa454e486249f79c30f5efb51f2dd5f57b3c766715b82c2", 2: "7305d26a61e36d804bf749deba64e3dd3b87d3d8bc569b3a5c61f70cb63ec81b",
                 3: "cc0989b329949a8aa278dfca6b28eafa436997a06d05883b1e14a280fece6d07",
                 4: "cc0989b329949a8aa278dfca6b28eafa436997a06d05883b1e14a280fece6d07"}

TINY = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(24, 48), layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
            sample_size=16)


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    reference = diffusers.AutoencoderKL(**TINY).eval()
    reference.save_pretrained(folder, safe_serialization=True)
    return folder, reference, AutoencoderKL.from_pretrained(folder)


def images(batch=2):
    return torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def latents(batch=2):
    return torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("mode", MODES)
def test_decode_matches_diffusers(tiny, mode):
    _, reference, vae = tiny
    z = latents()
    with torch.no_grad():
        want = reference.decode(z).sample.numpy()
    got = vae.decode(z.numpy(), mode=mode)
    assert got.shape == (2, 3, 16, 16)
    assert rel_err(got, want) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_encode_matches_diffusers(tiny, mode):
    _, reference, vae = tiny
    x = images()
    with torch.no_grad():
        distribution = reference.encode(x).latent_dist
    mean, logvar = vae.encode(x.numpy(), mode=mode)
    assert rel_err(mean, distribution.mean.numpy()) <= 1e-5
    assert rel_err(logvar, distribution.logvar.numpy()) <= 1e-5


def test_legacy_attention_names_and_default_scaling_factor(tiny, tmp_path):
    folder, _, vae = tiny
    legacy = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    tensors = {}
    for name, tensor in load_file(folder / "diffusion_pytorch_model.safetensors").items():
        for new, old in legacy.items():
            name = name.replace(f"attentions.0.{new}.", f"attentions.0.{old}.")
        tensors[name] = tensor
    assert "decoder.mid_block.attentions.0.proj_attn.weight" in tensors
    save_file(tensors, tmp_path / "diffusion_pytorch_model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    del config["scaling_factor"]  # as in the real SD1.5 vae/config.json
    (tmp_path / "config.json").write_text(json.dumps(config))
    old = AutoencoderKL.from_pretrained(tmp_path)
    assert old.scaling_factor == 0.18215
    z = latents(1).numpy()
    assert old.decode(z).tobytes() == vae.decode(z).tobytes()


def test_exact_bits_do_not_depend_on_batch_and_match_the_golden_hash(tiny):
    _, _, vae = tiny
    z = latents().numpy()
    batch = vae.decode(z, mode="exact")
    alone = np.concatenate([vae.decode(z[i:i + 1], mode="exact") for i in range(2)])
    assert batch.tobytes() == alone.tobytes()
    mean, _ = vae.encode(images().numpy(), mode="exact")
    assert hashlib.sha256(batch.tobytes() + mean.tobytes()).hexdigest() == GOLDEN_SHA256[KERNELS_VERSION]


def test_bad_shapes_are_clear_errors(tiny):
    _, _, vae = tiny
    with pytest.raises(ValueError, match="multiples of 2"):
        vae.encode(np.zeros((1, 3, 15, 16), np.float32))
    with pytest.raises(ValueError, match="latents must be"):
        vae.decode(np.zeros((4, 8, 8), np.float32))
