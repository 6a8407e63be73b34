"""Stable Diffusion checkpoints: a diffusers folder (fp32 and fp16 variants) and an original single file
(fp32 and fp16, SD1.5's built-in config or a folder's) load the same networks; every tensor name of the real
SD1.5 topology maps as diffusers' own single-file converter maps it; exact outputs have golden hashes and the
same bits under every BLAS kernel, thread count and SIMD level."""

import copy
import hashlib
import json
import shutil

import diffusers
import numpy as np
import pytest
import torch
import transformers
from diffusers.loaders import single_file_utils
from safetensors.torch import save_file

from sd_fixtures import shared_data
from tfao.kernels import sd_single_file
from tfao.kernels.modes import KERNELS_VERSION
from tfao.kernels.conv import Conv2d
from tfao.kernels.networks import layers, linear_layers
from tfao.kernels.ops import PreparedStore
from tfao.kernels.sd_single_file import SingleFileNames
from tfao.kernels.stable_diffusion import load, load_folder, load_single_file
from tfao.kernels.weights import WeightError

CLIP_TOKENIZER = shared_data("clip-tokenizer")
# exact-mode output hashes by kernels version (a deliberate change of bits bumps KERNELS_VERSION)
GOLDEN_SHA256 = {1: "c6dfe17e97c7983d4778df8aa341e34f1e5b0f5a52b4493f8f4b7cb17b148178", 2: "388b8d9ef21ef09d317d764eca1342fab3626766e1573133b74e478382631df2",
                 3: "dd8e2eeb2ecbc3d8b0ee1322fcc21f7c707333723efefd43f901d192403e0864",
                 4: "a7a0a6a51448075fe32927e4abff7c3392a264b20762bc09b09f05ec1d13a628"}

TINY_UNET = dict(sample_size=8, block_out_channels=(24, 48), layers_per_block=2, norm_num_groups=8,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=16, attention_head_dim=3)
TINY_VAE = dict(block_out_channels=(16, 32), layers_per_block=2, norm_num_groups=8, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)
TINY_CLIP = dict(vocab_size=49408, hidden_size=16, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2,
                 max_position_embeddings=77, hidden_act="quick_gelu", bos_token_id=0, eos_token_id=2, pad_token_id=1)


class Named(str):
    """A stand-in tensor that is its own name, so diffusers' converter shows where each name goes."""
    shape, ndim = (1,), 1


def single_file_from(unet_state, vae_state, text_state, unet_config, vae_config, dtype=torch.float32):
    names = SingleFileNames(unet_config, vae_config)
    tensors = {}
    for component, state in (("unet", unet_state), ("vae", vae_state), ("text_encoder", text_state)):
        for name, tensor in state.items():
            original = names.original(f"{component}.{name}")
            if "mid.attn_1." in original and tensor.ndim == 2:  # the original VAE stores these as 1x1 convolutions
                tensor = tensor[:, :, None, None]
            tensors[original] = tensor.to(dtype).contiguous()
    tensors["alphas_cumprod"] = torch.linspace(1, 0, 1000)  # schedule buffers and EMA entries are ignored
    tensors["model_ema.decay"] = torch.tensor(0.9999)
    return tensors


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-sd")
    torch.manual_seed(0)
    pipe = diffusers.StableDiffusionPipeline(
        unet=diffusers.UNet2DConditionModel(**TINY_UNET), vae=diffusers.AutoencoderKL(**TINY_VAE),
        text_encoder=transformers.CLIPTextModel(transformers.CLIPTextConfig(**TINY_CLIP)),
        tokenizer=transformers.CLIPTokenizer(str(CLIP_TOKENIZER / "vocab.json"), str(CLIP_TOKENIZER / "merges.txt")),
        scheduler=diffusers.PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                          skip_prk_steps=True, steps_offset=1, set_alpha_to_one=False),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    copy.deepcopy(pipe).to(torch.float16).save_pretrained(folder, safe_serialization=True, variant="fp16")
    state = lambda module: {name: tensor.detach() for name, tensor in module.state_dict().items()}
    tensors = single_file_from(state(pipe.unet), state(pipe.vae), state(pipe.text_encoder),
                               pipe.unet.config, pipe.vae.config)
    save_file(tensors, folder / "single.safetensors")
    save_file({name: t.half() if t.is_floating_point() else t for name, t in tensors.items()}, folder / "single-fp16.safetensors")
    return folder, pipe


RUN_ALL = """
def run_all(models, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.full((2, 77), 49407, dtype=np.int64)
    ids[:, :4] = [[49406, 320, 1125, 49407], [49406, 2368, 49407, 49407]]
    hidden, _ = models.text_encoder(ids)
    latents = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    noise = models.unet(latents, 999, hidden)
    image = models.vae.decode(latents / models.vae.scaling_factor)
    return hidden, noise, image
"""
exec(RUN_ALL)  # the same code runs in the determinism children


def test_folder_matches_diffusers(tiny_sd):
    folder, pipe = tiny_sd
    models = load_folder(folder)
    assert models.scheduler_config["_class_name"] == "PNDMScheduler" and models.tokenizer_folder == folder / "tokenizer"
    hidden, noise, image = run_all(models)
    latents = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
    with torch.no_grad():
        want_noise = pipe.unet(torch.from_numpy(latents), 999, torch.from_numpy(hidden)).sample.numpy()
        want_image = pipe.vae.decode(torch.from_numpy(latents) / 0.18215).sample.numpy()
    for got, want in ((noise, want_noise), (image, want_image)):
        assert np.max(np.abs(got - want)) / np.max(np.abs(want)) <= 1e-5


def test_fp16_variant_loads_as_float32(tiny_sd):
    folder, _ = tiny_sd
    half = load_folder(folder, variant="fp16")
    assert half.unet.conv_in.linear.weight_t.dtype == np.float32
    hidden, noise, _ = run_all(half)
    assert np.isfinite(noise).all() and hidden.shape == (2, 77, 16)


@pytest.mark.parametrize("name", ["single.safetensors", "single-fp16.safetensors"])
def test_single_file_gives_the_folders_outputs(tiny_sd, name):
    folder, _ = tiny_sd
    from_file = load(folder / name, config=folder)
    reference = load_folder(folder, variant="fp16" if "fp16" in name else None)
    for got, want in zip(run_all(from_file), run_all(reference)):
        assert got.tobytes() == want.tobytes()
    assert from_file.tokenizer_folder == folder / "tokenizer"


def test_prepared_exact_weights_are_shared_through_the_store(tiny_sd, tmp_path):
    folder, _ = tiny_sd
    plain = run_all(load_folder(folder))
    first = load_folder(folder, prepared=PreparedStore(tmp_path))
    assert [a.tobytes() for a in run_all(first)] == [a.tobytes() for a in plain]
    stored = sorted(tmp_path.iterdir())
    assert stored
    second = load_folder(folder, prepared=PreparedStore(tmp_path))
    assert [a.tobytes() for a in run_all(second)] == [a.tobytes() for a in plain]
    assert sorted(tmp_path.iterdir()) == stored
    # mapped, not rebuilt: GEMM weights, and the transformed weights of the 3x3 convolutions
    convs = [conv for conv in layers(second.unet, Conv2d) if conv.winograd is not None]
    assert convs and all(isinstance(conv.winograd.transformed("exact"), np.memmap) for conv in convs)
    gemms = [linear for linear in linear_layers(second.unet) if linear._exact is not None]
    assert gemms and all(isinstance(linear._exact[1], np.memmap) for linear in gemms)


def test_single_file_without_config_is_sd15(tiny_sd):
    folder, _ = tiny_sd
    with pytest.raises(WeightError, match=r"does not fit SD1.5 .*token_embedding.weight has shape \(49408, 16\)"):
        load_single_file(folder / "single.safetensors")  # tiny weights do not fit SD1.5's built-in shapes


def test_not_a_single_file_is_a_clear_error(tmp_path):
    save_file({"weight": torch.zeros(2)}, tmp_path / "other.safetensors")
    with pytest.raises(WeightError, match="not a Stable Diffusion single file"):
        load(tmp_path / "other.safetensors")


def test_missing_component_is_a_clear_error(tiny_sd, tmp_path):
    folder, _ = tiny_sd
    shutil.copytree(folder, tmp_path / "sd", ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(WeightError, match="text_encoder/ holds no model.safetensors"):
        load(tmp_path / "sd")


def diffusers_conversion(names: dict[str, str], convert, config):
    """{diffusers name: single-file name} as diffusers' converter maps the given single-file names."""
    converted = convert({ldm: Named(ldm) for ldm in names}, config)
    return {name: str(source) for name, source in converted.items()}


def real_sd15_state_names():
    """The tensor names diffusers and transformers build from the real SD1.5 configs, without weights."""
    with torch.device("meta"):
        unet = diffusers.UNet2DConditionModel(**{k: v for k, v in sd_single_file.SD15_UNET_CONFIG.items() if k != "_class_name"})
        vae = diffusers.AutoencoderKL(**{k: v for k, v in sd_single_file.SD15_VAE_CONFIG.items() if k != "_class_name"})
        text = transformers.CLIPTextModel(transformers.CLIPTextConfig(**sd_single_file.SD15_TEXT_ENCODER_CONFIG))
    return list(unet.state_dict()), list(vae.state_dict()), list(text.state_dict())


def test_every_real_sd15_name_maps_as_diffusers_maps_it():
    unet_names, vae_names, text_names = real_sd15_state_names()
    assert (len(unet_names), len(vae_names)) == (686, 248)
    rename = SingleFileNames(sd_single_file.SD15_UNET_CONFIG, sd_single_file.SD15_VAE_CONFIG)
    for names, component, convert, config in (
            (unet_names, "unet", single_file_utils.convert_ldm_unet_checkpoint, sd_single_file.SD15_UNET_CONFIG),
            (vae_names, "vae", single_file_utils.convert_ldm_vae_checkpoint, sd_single_file.SD15_VAE_CONFIG)):
        ours = {rename.original(f"{component}.{name}"): name for name in names}  # single-file name -> diffusers name
        assert len(ours) == len(names) and None not in ours
        theirs = diffusers_conversion(ours, convert, config)
        assert theirs == {name: ldm for ldm, name in ours.items()}  # diffusers reads each tensor where we do
        assert all(rename(ldm) == f"{component}.{name}" for ldm, name in ours.items())
    clip_names = ["cond_stage_model.transformer.text_model." + name for name in text_names]
    assert set(single_file_utils.convert_ldm_clip_checkpoint({n: n for n in clip_names})) == {f"text_model.{n}" for n in text_names}
    assert all(rename(name) == "text_encoder.text_model." + text for name, text in zip(clip_names, text_names))
    assert all(rename.original("text_encoder." + text) == name for name, text in zip(clip_names, text_names))


CHILD = """
import hashlib, sys
import numpy as np
from tfao.kernels.stable_diffusion import load_folder
""" + RUN_ALL + """
outputs = run_all(load_folder(sys.argv[1]))
print(hashlib.sha256(b"".join(output.tobytes() for output in outputs)).hexdigest())
"""


def test_exact_bits_are_the_same_everywhere_and_match_the_golden_hash(tiny_sd, determinism_matrix):
    folder, _ = tiny_sd
    hashes = determinism_matrix(CHILD.replace("sys.argv[1]", repr(str(folder))))
    assert set(hashes.values()) == {GOLDEN_SHA256[KERNELS_VERSION]}, hashes
