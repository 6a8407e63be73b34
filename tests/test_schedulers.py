"""The schedulers against diffusers' on the SD1.5 scheduler config: the same timesteps exactly, the same
initial sigma, and the same samples along a whole run of steps (diffusers computes its constants in
float32, these in float64, hence the tolerance)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

from tfao.kernels import schedulers
from tfao.kernels.random import Generator
from tfao.kernels.schedulers import SD15_SCHEDULER_CONFIG, make_scheduler

REFERENCE = {
    "pndm": ("PNDMScheduler", {}), "ddim": ("DDIMScheduler", {}), "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}), "dpm++2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}), "lms": ("LMSDiscreteScheduler", {}),
}


def reference_scheduler(name, config=SD15_SCHEDULER_CONFIG):
    class_name, overrides = REFERENCE[name]
    # built from the folder's PNDM config, as a user switching schedulers does (missing keys: class defaults)
    return getattr(diffusers, class_name).from_config(diffusers.PNDMScheduler.from_config(config).config, **overrides)


class SharedNoise:
    """Hands the same normals to our scheduler (as a generator) and to diffusers (as randn_tensor)."""

    def __init__(self, seed):
        self.generator = Generator(seed)
        self.last = None

    def standard_normal(self, shape):
        self.last = self.generator.standard_normal(shape)
        return self.last

    def randn_tensor(self, shape, **_):  # diffusers steps after us: the normals our step just drew
        assert self.last.shape == tuple(shape)
        return torch.from_numpy(self.last)


def test_sd15_five_step_timesteps():
    expected = {"pndm": [801, 601, 601, 401, 201, 1], "ddim": [801, 601, 401, 201, 1], "euler": [999, 749.25, 499.5, 249.75, 0],
                "dpm++2m": [999, 799, 599, 400, 200]}
    for name, timesteps in expected.items():
        scheduler = make_scheduler(name)
        scheduler.set_timesteps(5)
        assert scheduler.timesteps.tolist() == timesteps


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("steps", [1, 2, 5, 20, 50])
def test_timesteps_and_sigmas_equal_diffusers(name, steps):
    ref, ours = reference_scheduler(name), make_scheduler(name)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert ours.timesteps.dtype == ref.timesteps.numpy().dtype
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    assert ours.init_noise_sigma == pytest.approx(float(ref.init_noise_sigma), rel=1e-4)
    if hasattr(ref, "sigmas") and hasattr(ours, "sigmas"):
        np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("spacing", ["linspace", "leading", "trailing"])
@pytest.mark.parametrize("name", ["pndm", "ddim", "euler", "dpm++2m"])
def test_every_timestep_spacing(name, spacing):
    config = {**SD15_SCHEDULER_CONFIG, "timestep_spacing": spacing}
    for steps in (3, 7, 25):
        ref, ours = reference_scheduler(name, config), make_scheduler(name, config)
        ref.set_timesteps(steps)
        ours.set_timesteps(steps)
        assert ours.timesteps.tolist() == ref.timesteps.tolist()


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("steps", [5, 20])
def test_a_run_of_steps_matches_diffusers(name, steps, monkeypatch):
    ref, ours = reference_scheduler(name), make_scheduler(name)
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    noise = SharedNoise(11)
    monkeypatch.setattr(diffusers.schedulers.scheduling_euler_ancestral_discrete, "randn_tensor", noise.randn_tensor)
    rng = np.random.default_rng(steps)
    x = (rng.standard_normal((2, 4, 3, 5)) * ours.init_noise_sigma).astype(np.float32)
    x_ref = torch.from_numpy(x.copy())
    for t, t_ref in zip(ours.timesteps, ref.timesteps):
        eps = rng.standard_normal(x.shape).astype(np.float32)
        np.testing.assert_allclose(ours.scale_model_input(x, t), ref.scale_model_input(x_ref, t_ref).numpy(), rtol=2e-4, atol=2e-4)
        x = ours.step(eps, t, x, generator=noise)
        x_ref = ref.step(torch.from_numpy(eps), t_ref, x_ref).prev_sample
        assert x.dtype == np.float32 and x.shape == (2, 4, 3, 5)
        assert np.abs(x - x_ref.numpy()).max() <= 2e-4 * (1 + np.abs(x).max())


@pytest.mark.parametrize("name", list(REFERENCE))
def test_img2img_start_and_add_noise_match_diffusers(name):
    ref, ours = reference_scheduler(name), make_scheduler(name)
    ref.set_timesteps(10)
    ours.set_timesteps(10)
    begin = 4
    if hasattr(ref, "set_begin_index"):
        ref.set_begin_index(begin)
    ours.set_begin_index(begin)
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2, 1, 4, 3, 3)).astype(np.float32)
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[begin:begin + 1]).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, noise), expected, rtol=1e-4, atol=1e-5)


def test_schedulers_give_different_samples():
    # the pipeline tests compare images: the schedulers must be far apart for those tests to mean anything
    outs = {}
    for name in REFERENCE:
        scheduler = make_scheduler(name)
        scheduler.set_timesteps(5)
        rng = np.random.default_rng(1)
        x = (rng.standard_normal((1, 4, 2, 2)) * scheduler.init_noise_sigma).astype(np.float32)
        for t in scheduler.timesteps:
            x = scheduler.step(rng.standard_normal(x.shape).astype(np.float32), t, scheduler.scale_model_input(x, t), generator=Generator(0))
        outs[name] = x
    names = list(outs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(outs[a] - outs[b]).mean() > 1e-3, (a, b)


def test_names_aliases_and_errors():
    assert isinstance(make_scheduler(None), schedulers.PNDM)  # the SD1.5 folder's class
    assert isinstance(make_scheduler(None, {**SD15_SCHEDULER_CONFIG, "_class_name": "EulerDiscreteScheduler"}), schedulers.Euler)
    assert isinstance(make_scheduler("Euler-A"), schedulers.EulerAncestral)
    assert make_scheduler("dpm++2m_karras").config["use_karras_sigmas"] is True
    with pytest.raises(ValueError, match="unknown scheduler 'heun'.*pndm, ddim"):
        make_scheduler("heun")
    with pytest.raises(ValueError, match="only DPM-Solver"):
        make_scheduler("dpm++2m", {**SD15_SCHEDULER_CONFIG, "solver_order": 3})
    with pytest.raises(ValueError, match="prediction_type"):
        make_scheduler("ddim", {**SD15_SCHEDULER_CONFIG, "prediction_type": "v_prediction"})
    scheduler = make_scheduler("euler")
    with pytest.raises(ValueError, match="set_timesteps"):
        scheduler.step(np.zeros(1, np.float32), 0, np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler.set_timesteps(0)
    ancestral = make_scheduler("euler_a")
    ancestral.set_timesteps(2)
    with pytest.raises(ValueError, match="generator"):
        ancestral.step(np.zeros(1, np.float32), ancestral.timesteps[0], np.zeros(1, np.float32))
