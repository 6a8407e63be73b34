"""The Stable Diffusion pipeline against diffusers' on a tiny random SD1.5-layout model: txt2img from the
same initial latents with every scheduler (5 steps, CFG 7.5, 32x24 px), negative prompts, batches,
long prompts, img2img with the same noise; plus the seed -> image contract and its progress bar."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from sd_fixtures import build_reference, initial_latents
from tfao.kernels.random import Generator
from tfao.models.clip import load_clip_tokenizer
from tfao.models.stable_diffusion import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")

PROMPT = "a photo of a cat"
SCHEDULER_CLASSES = {
    "pndm": ("PNDMScheduler", {}), "ddim": ("DDIMScheduler", {}), "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}), "dpm++2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}), "lms": ("LMSDiscreteScheduler", {}),
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    reference, folder = build_reference(tmp_path_factory.mktemp("tiny-sd"))
    reference.folder_scheduler_config = reference.scheduler.config
    return reference, folder, StableDiffusionPipeline.from_pretrained(folder)


def with_scheduler(reference, name):
    """The reference pipeline with a scheduler built from the folder's config, as a diffusers user swaps it."""
    class_name, overrides = SCHEDULER_CLASSES[name]
    reference.scheduler = getattr(diffusers, class_name).from_config(reference.folder_scheduler_config, **overrides)
    return reference


def share_noise(monkeypatch, generator):
    """diffusers draws its noise (VAE sampling, img2img, ancestral steps) from our generator's stream, in
    the order it asks for it; our pipeline asks in the same order."""
    def randn_tensor(shape, **_):
        return torch.from_numpy(generator.standard_normal(tuple(shape)))

    for module in (diffusers.schedulers.scheduling_euler_ancestral_discrete, diffusers.models.autoencoders.vae,
                   diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img,
                   diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion):
        monkeypatch.setattr(module, "randn_tensor", randn_tensor)


def as_uint8(images):
    return np.round(np.asarray(images) * 255).astype(np.uint8)


def mean_abs_diff(a, b):
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


@pytest.mark.parametrize("scheduler", list(SCHEDULER_CLASSES))
def test_txt2img_from_given_latents_matches_diffusers(tiny, scheduler, monkeypatch):
    reference, _, pipe = tiny
    latents = initial_latents(1, 24, 32)
    share_noise(monkeypatch, Generator(0))  # our run: latents given, no seed -> seed 0 for any later noise
    want = as_uint8(with_scheduler(reference, scheduler)(PROMPT, height=24, width=32, num_inference_steps=5, guidance_scale=7.5,
                                                         latents=torch.from_numpy(latents), output_type="np").images)
    got = pipe(PROMPT, height=24, width=32, num_inference_steps=5, guidance_scale=7.5, latents=latents, scheduler=scheduler,
               progress=False)
    assert got.pixels.shape == (1, 24, 32, 3) and got.pixels.dtype == np.uint8
    assert mean_abs_diff(got.pixels, want) <= 1.0  # 1/255 of the image's range
    pndm = pipe(PROMPT, height=24, width=32, num_inference_steps=5, latents=latents, scheduler="pndm", progress=False)
    if scheduler != "pndm":  # the schedulers are far apart, so the comparison above could tell them apart
        assert mean_abs_diff(got.pixels, pndm.pixels) > 8.0


def test_negative_prompts_batches_and_images_per_prompt_match_diffusers(tiny):
    reference, _, _ = tiny
    prompts, negative = ["a photo of a dog", "a cat"], ["photo", "dog"]
    latents = initial_latents(4, 16, 16, seed=3)
    want = as_uint8(with_scheduler(reference, "ddim")(prompts, negative_prompt=negative, height=16, width=16, num_inference_steps=3,
                                                      num_images_per_prompt=2, latents=torch.from_numpy(latents), output_type="np").images)
    fast = StableDiffusionPipeline.from_pretrained(tiny[1], mode="fast")
    got = fast(prompts, negative_prompt=negative, height=16, width=16, num_inference_steps=3, num_images_per_prompt=2,
                    latents=latents, scheduler="ddim", progress=False)
    assert got.pixels.shape == (4, 16, 16, 3)
    assert mean_abs_diff(got.pixels, want) <= 1.0


def test_guidance_off_runs_the_unet_on_the_prompt_alone(tiny):
    reference, _, pipe = tiny
    latents = initial_latents(1, 16, 16, seed=4)
    want = as_uint8(with_scheduler(reference, "euler")(PROMPT, height=16, width=16, num_inference_steps=2, guidance_scale=1.0,
                                                       latents=torch.from_numpy(latents), output_type="np").images)
    got = pipe(PROMPT, height=16, width=16, num_inference_steps=2, guidance_scale=1.0, latents=latents, scheduler="euler", progress=False)
    assert mean_abs_diff(got.pixels, want) <= 1.0


def test_long_prompts_are_truncated_as_diffusers_does(tiny):
    reference, folder, pipe = tiny
    long_prompt = " ".join(["a photo of a cat"] * 40)
    want_ids = reference.tokenizer(long_prompt, padding="max_length", max_length=77, truncation=True).input_ids
    assert pipe.tokenizer.encode(long_prompt).ids == want_ids
    assert len(want_ids) == 77 and want_ids[-1] == reference.tokenizer.eos_token_id
    with torch.no_grad():
        want, _ = reference.encode_prompt(long_prompt, "cpu", 1, False)
    np.testing.assert_allclose(pipe.encode_prompt([long_prompt], "exact"), want.numpy(), rtol=1e-5, atol=1e-5)


def test_the_tokenizer_from_vocab_and_merges_equals_tokenizer_json(tiny):
    reference, folder, _ = tiny
    from_files = load_clip_tokenizer(folder.parent / "bpe")
    from_json = load_clip_tokenizer(folder / "tokenizer")
    for text in ["a photo of a cat", "  A  Dog's   PHOTO!! 123 ", "naïve café 😀", ""]:
        want = reference.tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids
        assert from_files.encode(text).ids == want
        assert from_json.encode(text).ids == want


@pytest.mark.parametrize("scheduler", ["pndm", "euler_a"])
def test_img2img_matches_diffusers(tiny, scheduler, monkeypatch):
    from PIL import Image

    reference, folder, _ = tiny
    image = Image.fromarray(np.random.default_rng(5).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    img2img = diffusers.StableDiffusionImg2ImgPipeline(**with_scheduler(reference, scheduler).components)
    img2img.set_progress_bar_config(disable=True)
    share_noise(monkeypatch, Generator(9))
    want = as_uint8(img2img(PROMPT, image=image, strength=0.6, num_inference_steps=5, output_type="np").images)
    ours = StableDiffusionImg2ImgPipeline.from_pretrained(folder)
    got = ours(PROMPT, image, strength=0.6, num_inference_steps=5, seed=9, scheduler=scheduler, progress=False)
    assert got.pixels.shape == (1, 24, 32, 3)
    assert mean_abs_diff(got.pixels, want) <= 1.0


def test_a_seed_is_an_image(tiny):
    _, _, pipe = tiny
    options = dict(height=16, width=16, num_inference_steps=2, scheduler="euler_a", progress=False)
    first, again, other = (pipe(PROMPT, seed=s, **options) for s in (7, 7, 8))
    assert first.seed == 7 and first.pixels.tobytes() == again.pixels.tobytes()
    assert first.pixels.tobytes() != other.pixels.tobytes()
    latents = Generator(7).standard_normal((1, 4, 8, 8))
    given = pipe(PROMPT, latents=latents, **{**options, "scheduler": "euler"})
    assert given.pixels.tobytes() == pipe(PROMPT, seed=7, **{**options, "scheduler": "euler"}).pixels.tobytes()
    unseeded = pipe(PROMPT, **options)
    assert isinstance(unseeded.seed, int)
    assert first.images[0].size == (16, 16) and first.images[0].mode == "RGB"


def test_progress_bar_counts_steps_when_asked(tiny, capsys):
    _, _, pipe = tiny
    pipe(PROMPT, height=16, width=16, num_inference_steps=3, seed=1, scheduler="ddim", progress=True)
    assert "3/3" in capsys.readouterr().err
    pipe(PROMPT, height=16, width=16, num_inference_steps=3, seed=1, scheduler="ddim")  # stderr is not a terminal here
    assert capsys.readouterr().err == ""


def test_clear_errors(tiny):
    _, _, pipe = tiny
    for options, message in [
        (dict(height=21), "height must be a positive multiple of 2"), (dict(width=0), "width"),
        (dict(num_inference_steps=0), "num_inference_steps"), (dict(num_images_per_prompt=0), "num_images_per_prompt"),
        (dict(latents=np.zeros((1, 4, 3, 3), np.float32)), "latents must have shape"), (dict(scheduler="heun"), "unknown scheduler"),
        (dict(image=np.zeros((16, 16, 3), np.uint8), strength=1.5), "strength"),
        (dict(image=np.zeros((16, 16, 3), np.uint8), strength=0.1, num_inference_steps=5), "no denoising step"),
        (dict(negative_prompt=["a", "b"]), "negative prompts"),
    ]:
        with pytest.raises(ValueError, match=message):
            pipe(PROMPT, **{"height": 16, "width": 16, "num_inference_steps": 1, "progress": False, **options})
    with pytest.raises(ValueError, match="prompt must be a string"):
        pipe(3)
    with pytest.raises(ValueError, match="needs an image"):
        StableDiffusionImg2ImgPipeline.from_pretrained(tiny[1])(PROMPT)
    with pytest.raises(ValueError, match="not a Stable Diffusion model"):
        StableDiffusionPipeline.from_pretrained(tiny[1] / "unet")


def test_a_single_file_gives_the_folders_images(tiny, tmp_path):
    from safetensors.torch import save_file
    from test_sd_loading import single_file_from

    reference, folder, pipe = tiny
    state = lambda module: {name: tensor.detach() for name, tensor in module.state_dict().items()}
    save_file(single_file_from(state(reference.unet), state(reference.vae), state(reference.text_encoder),
                               reference.unet.config, reference.vae.config), tmp_path / "tiny.safetensors")
    single = StableDiffusionPipeline.from_pretrained(tmp_path / "tiny.safetensors", config=folder)
    options = dict(height=16, width=16, num_inference_steps=2, seed=3, progress=False)
    assert single(PROMPT, **options).pixels.tobytes() == pipe(PROMPT, **options).pixels.tobytes()
    with pytest.raises(ValueError, match="no tokenizer"):
        StableDiffusionPipeline.from_pretrained(tmp_path / "tiny.safetensors")
