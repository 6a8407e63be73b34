"""UNet2DConditionModel against diffusers on tiny random configs with SD1.5's block types but unusual
channels, groups and head counts, at t = 1, 500 and 999, in both math modes."""

import hashlib

import diffusers
import numpy as np
import pytest
import torch

from tfao.kernels.modes import KERNELS_VERSION
from tfao.kernels.unet import UNet2DConditionModel
from tfao.kernels.weights import WeightError

MODES = ["exact", "fast"]
# exact-mode output hashes by kernels version (a deliberate change of bits bumps KERNELS_VERSION)
GOLDEN_SHA256 = {1: "10b2ce5b7bc66b9377c2220595e7e913ee37f749fa145ebf66e33617cc7b745c", 2: "1409a48ff823e83f87f0ca9151d456881cf96bd3740978fb6f04bbef0e1bdefc",
                 3: "873a6ecc8612cad0e9f843cf8265ecb4d699578297c464d22aae4509714d18dc",
                 4: "18e7117e32348e268f312586ab6d06787d8cff8c6d5465e5a1927e29d379258e"}

SD15_LIKE = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(24, 48), layers_per_block=2,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=20, attention_head_dim=3, norm_num_groups=8)
SD2_LIKE = dict(SD15_LIKE, down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=(3, 2),
                use_linear_projection=True, flip_sin_to_cos=False, freq_shift=1, downsample_padding=0,
                transformer_layers_per_block=(1, 2), layers_per_block=1, norm_eps=1e-6)


def save_reference(folder, **config):
    torch.manual_seed(0)
    model = diffusers.UNet2DConditionModel(**config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def inputs(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, 4, 8, 8, generator=generator)
    context = torch.randn(batch, 7, 20, generator=generator)
    return sample, context


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - want)) / np.max(np.abs(want)))


@pytest.fixture(scope="module")
def sd15_like(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unet")
    return save_reference(folder, **SD15_LIKE), UNet2DConditionModel.from_pretrained(folder)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("timestep", [1, 500, 999])
def test_unet_matches_diffusers(sd15_like, mode, timestep):
    reference, unet = sd15_like
    sample, context = inputs()
    with torch.no_grad():
        want = reference(sample, timestep, context).sample.numpy()
    got = unet(sample.numpy(), timestep, context.numpy(), mode=mode)
    assert got.shape == want.shape
    assert rel_err(got, want) <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_sd2_style_settings_match_diffusers(tmp_path, mode):
    reference = save_reference(tmp_path, **SD2_LIKE)
    sample, context = inputs()
    timesteps = torch.tensor([999.0, 249.75])  # fractional, one per sample, as the Euler schedulers give
    with torch.no_grad():
        want = reference(sample, timesteps, context).sample.numpy()
    got = UNet2DConditionModel.from_pretrained(tmp_path)(sample.numpy(), timesteps.numpy(), context.numpy(), mode=mode)
    assert rel_err(got, want) <= 1e-5


def test_exact_cfg_batch_equals_two_single_calls_and_the_golden_hash(sd15_like):
    _, unet = sd15_like
    sample, context = (t.numpy() for t in inputs())
    batch = unet(sample, 500, context, mode="exact")
    alone = np.concatenate([unet(sample[i:i + 1], 500, context[i:i + 1], mode="exact") for i in range(2)])
    assert batch.tobytes() == alone.tobytes()
    assert hashlib.sha256(batch.tobytes()).hexdigest() == GOLDEN_SHA256[KERNELS_VERSION]


def test_bad_inputs_and_unsupported_configs_are_clear_errors(sd15_like, tmp_path):
    _, unet = sd15_like
    sample, context = (t.numpy() for t in inputs())
    with pytest.raises(ValueError, match="multiples of 2"):
        unet(sample[:, :, :7], 1, context)
    with pytest.raises(ValueError, match="batch"):
        unet(sample, 1, context[:1])
    save_reference(tmp_path, **SD15_LIKE)
    config_path = tmp_path / "config.json"
    config_path.write_text(config_path.read_text().replace('"class_embed_type": null', '"class_embed_type": "timestep"'))
    with pytest.raises(ValueError, match="class_embed_type"):
        UNet2DConditionModel.from_pretrained(tmp_path)
    config_path.write_text(config_path.read_text().replace('"class_embed_type": "timestep"', '"class_embed_type": null')
                           .replace('"cross_attention_dim": 20', '"cross_attention_dim": 21'))
    with pytest.raises(WeightError, match="attn2.to_k.weight has shape"):
        UNet2DConditionModel.from_pretrained(tmp_path)
