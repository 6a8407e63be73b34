"""Diffusion schedulers for Stable Diffusion, equivalent to diffusers' on the same ``scheduler_config.json``:
PNDM (PLMS, ``skip_prk_steps``), DDIM, Euler, Euler ancestral, DPM++ 2M (optionally with Karras sigmas)
and LMS.

One interface: ``set_timesteps(n)``, ``timesteps``, ``init_noise_sigma``, ``scale_model_input(x, t)``,
``step(noise_pred, t, x, generator=None)`` and ``add_noise(x0, noise)`` (img2img; at the current step).
Keys missing from the config take each scheduler's own default, as diffusers does when one scheduler
is built from another's config. Constants are float64 from IEEE arithmetic and the exact ``log``/``exp``
(no platform ``pow``), steps are float32 elementwise arithmetic: the same bits on every machine.
"""

from __future__ import annotations

import numpy as np

from .transcendentals import exp64, log64

SD15_SCHEDULER_CONFIG = {  # stable-diffusion-v1-5 scheduler/scheduler_config.json
    "_class_name": "PNDMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "skip_prk_steps": True, "steps_offset": 1, "set_alpha_to_one": False,
    "clip_sample": False, "trained_betas": None,
}

_KARRAS_RHO = 7.0


def _pow(x, y) -> np.ndarray:
    """x ** y for x > 0 from the exact log and exp."""
    return exp64(np.asarray(y, dtype=np.float64) * log64(x))


class Scheduler:
    """The noise schedule of a config and the state of one denoising run."""

    name = ""
    defaults = {"timestep_spacing": "linspace", "steps_offset": 0}
    order = 1  # model calls per step, as the img2img timestep arithmetic counts them

    def __init__(self, config: dict | None = None, **overrides):
        given = {**(SD15_SCHEDULER_CONFIG if config is None else config), **overrides}
        self.config = {**_COMMON_DEFAULTS, **self.defaults, **{k: v for k, v in given.items() if k in _CONFIG_KEYS}}
        if self.config["prediction_type"] != "epsilon":
            raise ValueError(f"{self.name}: prediction_type {self.config['prediction_type']!r} is not supported (only 'epsilon')")
        if self.config["timestep_spacing"] not in ("linspace", "leading", "trailing"):
            raise ValueError(f"{self.name}: timestep_spacing must be linspace, leading or trailing, got {self.config['timestep_spacing']!r}")
        self.alphas_cumprod = _alphas_cumprod(self.config)
        self.num_train_timesteps = int(self.config["num_train_timesteps"])
        self.timesteps = np.arange(self.num_train_timesteps)[::-1].copy()
        self.num_inference_steps = None
        self.step_index = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(steps={self.num_inference_steps})"

    def set_timesteps(self, num_inference_steps: int) -> None:
        if not 1 <= int(num_inference_steps) <= self.num_train_timesteps:
            raise ValueError(f"num_inference_steps must be in [1, {self.num_train_timesteps}], got {num_inference_steps}")
        self.num_inference_steps = int(num_inference_steps)
        self.step_index = 0
        self._set_timesteps(self.num_inference_steps)

    def set_begin_index(self, begin_index: int) -> None:
        """Starts the run at ``timesteps[begin_index]`` (img2img)."""
        self.step_index = int(begin_index)

    def _spaced(self, n: int) -> np.ndarray:
        """Descending timesteps by the config's spacing; linspace ones stay fractional (float64)."""
        spacing, train = self.config["timestep_spacing"], self.num_train_timesteps
        if spacing == "linspace":
            return np.linspace(0, train - 1, n)[::-1].copy()
        if spacing == "leading":
            return (np.arange(n) * (train // n))[::-1].astype(np.float64) + self.config["steps_offset"]
        return np.round(np.arange(train, 0, -train / n)) - 1.0

    @property
    def init_noise_sigma(self) -> float:
        return 1.0

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        return sample

    def _check_ready(self):
        if self.num_inference_steps is None:
            raise ValueError(f"{self.name}: call set_timesteps(n) before step()")
        if self.step_index >= len(self.timesteps):
            raise ValueError(f"{self.name}: all {len(self.timesteps)} steps are done")


_COMMON_DEFAULTS = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "prediction_type": "epsilon", "use_karras_sigmas": False,
}
_CONFIG_KEYS = set(_COMMON_DEFAULTS) | {"timestep_spacing", "steps_offset", "set_alpha_to_one", "clip_sample",
                                        "clip_sample_range", "algorithm_type", "solver_order", "solver_type"}


def _alphas_cumprod(config: dict) -> np.ndarray:
    n = int(config["num_train_timesteps"])
    if config.get("trained_betas") is not None:
        betas = np.asarray(config["trained_betas"], dtype=np.float64)
    elif config["beta_schedule"] == "linear":
        betas = np.linspace(config["beta_start"], config["beta_end"], n)
    elif config["beta_schedule"] == "scaled_linear":
        betas = np.linspace(np.sqrt(config["beta_start"]), np.sqrt(config["beta_end"]), n) ** 2
    else:
        raise ValueError(f"beta_schedule {config['beta_schedule']!r} is not supported (linear, scaled_linear)")
    return np.multiply.accumulate(1.0 - betas)  # a sequential scan: a fixed order


class _AlphaScheduler(Scheduler):
    """Schedulers that step on alphas_cumprod at integer timesteps (DDIM, PNDM)."""

    defaults = {"timestep_spacing": "leading", "steps_offset": 0, "set_alpha_to_one": False}

    def _alpha_prev(self, prev_timestep: int) -> float:
        if prev_timestep >= 0:
            return float(self.alphas_cumprod[prev_timestep])
        return 1.0 if self.config["set_alpha_to_one"] else float(self.alphas_cumprod[0])

    def _step_ratio(self) -> int:
        return self.num_train_timesteps // self.num_inference_steps

    def add_noise(self, original: np.ndarray, noise: np.ndarray) -> np.ndarray:
        alpha = float(self.alphas_cumprod[int(self.timesteps[self.step_index])])
        return (np.float32(np.sqrt(alpha)) * original + np.float32(np.sqrt(1.0 - alpha)) * noise).astype(np.float32)


class DDIM(_AlphaScheduler):
    name = "ddim"
    defaults = {**_AlphaScheduler.defaults, "set_alpha_to_one": True, "clip_sample": True, "clip_sample_range": 1.0}

    def _set_timesteps(self, n):
        spaced = self._spaced(n)
        self.timesteps = (np.round(spaced) if self.config["timestep_spacing"] == "linspace" else spaced).astype(np.int64)

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        timestep = int(timestep)
        alpha, alpha_prev = float(self.alphas_cumprod[timestep]), self._alpha_prev(timestep - self._step_ratio())
        predicted_original = (sample - np.float32(np.sqrt(1.0 - alpha)) * noise_pred) / np.float32(np.sqrt(alpha))
        if self.config["clip_sample"]:
            bound = np.float32(self.config["clip_sample_range"])
            predicted_original = np.clip(predicted_original, -bound, bound)
        self.step_index += 1
        return (np.float32(np.sqrt(alpha_prev)) * predicted_original + np.float32(np.sqrt(1.0 - alpha_prev)) * noise_pred).astype(np.float32)


class PNDM(_AlphaScheduler):
    """PLMS steps (``skip_prk_steps``): a linear multistep method whose first step is repeated once."""

    name = "pndm"

    def _set_timesteps(self, n):
        spaced = self._spaced(n)[::-1]  # ascending
        base = (np.round(spaced) if self.config["timestep_spacing"] == "linspace" else spaced).astype(np.int64)
        self.timesteps = np.concatenate([base[:-1], base[-2:-1], base[-1:]])[::-1].copy()
        self._history: list[np.ndarray] = []
        self._first_sample = None
        self._counter = 0

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        timestep, ratio = int(timestep), self._step_ratio()
        prev_timestep = timestep - ratio
        if self._counter == 1:  # the repeated first timestep: average its two predictions (Heun-like)
            prev_timestep, timestep = timestep, timestep + ratio
        else:
            self._history = self._history[-3:] + [noise_pred]
        history = self._history
        if self._counter == 0:
            self._first_sample = sample
            eps = noise_pred
        elif self._counter == 1:
            eps = (noise_pred + history[-1]) / np.float32(2)
            sample, self._first_sample = self._first_sample, None
        elif len(history) == 2:
            eps = (3 * history[-1] - history[-2]) / np.float32(2)
        elif len(history) == 3:
            eps = (23 * history[-1] - 16 * history[-2] + 5 * history[-3]) / np.float32(12)
        else:
            eps = np.float32(1 / 24) * (55 * history[-1] - 59 * history[-2] + 37 * history[-3] - 9 * history[-4])
        self._counter += 1
        self.step_index += 1
        return self._previous_sample(sample, timestep, prev_timestep, eps)

    def _previous_sample(self, sample, timestep, prev_timestep, eps):
        alpha, alpha_prev = float(self.alphas_cumprod[timestep]), self._alpha_prev(prev_timestep)
        sample_coeff = np.sqrt(alpha_prev / alpha)
        eps_denominator = alpha * np.sqrt(1.0 - alpha_prev) + np.sqrt(alpha * (1.0 - alpha) * alpha_prev)
        return (np.float32(sample_coeff) * sample - np.float32((alpha_prev - alpha) / eps_denominator) * eps).astype(np.float32)


class _SigmaScheduler(Scheduler):
    """Schedulers on the noise levels sigma = sqrt((1 - a) / a) (Euler, Euler ancestral, LMS, DPM++)."""

    def __init__(self, config: dict | None = None, **overrides):
        super().__init__(config, **overrides)
        self.sigmas = np.concatenate([self._train_sigmas()[::-1], [0.0]]).astype(np.float32)

    def _train_sigmas(self) -> np.ndarray:
        return np.sqrt((1.0 - self.alphas_cumprod) / self.alphas_cumprod)

    def _interpolated_sigmas(self, timesteps: np.ndarray) -> np.ndarray:
        """The training sigmas linearly interpolated at fractional timesteps."""
        table = self._train_sigmas()
        low = np.clip(np.floor(timesteps).astype(np.int64), 0, len(table) - 2)
        weight = timesteps - low
        return table[low] + weight * (table[low + 1] - table[low])

    def _karras(self, sigma_max: float, sigma_min: float, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Karras et al.'s sigmas (rho 7) from sigma_max to sigma_min, and the timesteps they fall on."""
        ramp = np.linspace(0, 1, n)
        max_inv, min_inv = _pow(sigma_max, 1 / _KARRAS_RHO), _pow(sigma_min, 1 / _KARRAS_RHO)
        sigmas = _pow(max_inv + ramp * (min_inv - max_inv), _KARRAS_RHO)
        return sigmas, self._sigma_to_timestep(sigmas)

    def _sigma_to_timestep(self, sigmas: np.ndarray) -> np.ndarray:
        """The fractional timestep at which the log of the training sigmas crosses each sigma."""
        log_table = log64(self._train_sigmas())
        log_sigma = log64(np.maximum(sigmas, 1e-10))
        low = np.clip(np.sum(log_sigma[None, :] - log_table[:, None] >= 0, axis=0) - 1, 0, len(log_table) - 2)
        weight = np.clip((log_table[low] - log_sigma) / (log_table[low] - log_table[low + 1]), 0.0, 1.0)
        return (1.0 - weight) * low + weight * (low + 1)

    @property
    def init_noise_sigma(self) -> float:
        sigma_max = float(np.max(self.sigmas))
        return sigma_max if self.config["timestep_spacing"] in ("linspace", "trailing") else float(np.sqrt(sigma_max**2 + 1.0))

    def _set_timesteps(self, n):
        timesteps = self._spaced(n).astype(np.float32).astype(np.float64)
        sigmas = self._interpolated_sigmas(timesteps)
        if self.config["use_karras_sigmas"]:
            sigmas, timesteps = self._karras(sigmas[0], sigmas[-1], n)
        self.timesteps = timesteps.astype(np.float32)
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)

    def _sigma(self, offset: int = 0) -> float:
        return float(self.sigmas[self.step_index + offset])

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        return (sample / np.float32(np.sqrt(self._sigma() ** 2 + 1.0))).astype(np.float32)

    def add_noise(self, original: np.ndarray, noise: np.ndarray) -> np.ndarray:
        return (original + noise * np.float32(self._sigma())).astype(np.float32)


class Euler(_SigmaScheduler):
    name = "euler"

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        sigma, sigma_next = self._sigma(), self._sigma(1)
        # x0 = x - sigma * eps and d = (x - x0) / sigma, so the Euler step is x + eps * (sigma_next - sigma)
        predicted_original = sample - np.float32(sigma) * noise_pred
        derivative = (sample - predicted_original) / np.float32(sigma)
        self.step_index += 1
        return (sample + derivative * np.float32(sigma_next - sigma)).astype(np.float32)


class EulerAncestral(_SigmaScheduler):
    """Euler to a lower noise level, then fresh noise from the generator back up to the next one."""

    name = "euler_a"

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        if generator is None:
            raise ValueError("euler_a: step() needs a generator for its ancestral noise")
        sigma, sigma_next = self._sigma(), self._sigma(1)
        sigma_up = np.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2)
        sigma_down = np.sqrt(sigma_next**2 - sigma_up**2)
        predicted_original = sample - np.float32(sigma) * noise_pred
        derivative = (sample - predicted_original) / np.float32(sigma)
        moved = sample + derivative * np.float32(sigma_down - sigma)
        noise = generator.standard_normal(noise_pred.shape)
        self.step_index += 1
        return (moved + noise * np.float32(sigma_up)).astype(np.float32)


class LMS(_SigmaScheduler):
    """Linear multistep on sigma: the last four derivatives weighted by integrated Lagrange polynomials."""

    name = "lms"
    max_order = 4

    def _set_timesteps(self, n):
        super()._set_timesteps(n)
        self._derivatives: list[np.ndarray] = []

    def _coefficient(self, order: int, current: int) -> float:
        """Integral over [sigma_i, sigma_i+1] of the Lagrange basis polynomial of sigma_(i - current)."""
        i, sigmas = self.step_index, self.sigmas.astype(np.float64)
        poly = np.array([1.0])  # coefficients, highest power first
        for k in range(order):
            if k != current:
                poly = np.convolve(poly, [1.0, -sigmas[i - k]]) / (sigmas[i - current] - sigmas[i - k])
        antiderivative = np.concatenate([poly / np.arange(len(poly), 0, -1), [0.0]])
        return float(_horner(antiderivative, sigmas[i + 1]) - _horner(antiderivative, sigmas[i]))

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        sigma = self._sigma()
        predicted_original = sample - np.float32(sigma) * noise_pred
        self._derivatives = (self._derivatives + [(sample - predicted_original) / np.float32(sigma)])[-self.max_order:]
        order = min(self.step_index + 1, self.max_order)
        result = sample
        for current, derivative in zip(range(order), reversed(self._derivatives)):
            result = result + np.float32(self._coefficient(order, current)) * derivative
        self.step_index += 1
        return result.astype(np.float32)


def _horner(coeffs: np.ndarray, x: float) -> float:
    total = 0.0
    for c in coeffs:
        total = total * x + c
    return total


class DPMSolverMultistep(_SigmaScheduler):
    """DPM-Solver++ 2M (midpoint): data predictions extrapolated in log-SNR; first order at the ends."""

    name = "dpm++2m"
    defaults = {**_SigmaScheduler.defaults, "algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "midpoint"}

    def __init__(self, config: dict | None = None, **overrides):
        super().__init__(config, **overrides)
        variant = (self.config["algorithm_type"], self.config["solver_order"], self.config["solver_type"])
        if variant != ("dpmsolver++", 2, "midpoint"):
            raise ValueError(f"{self.name}: only DPM-Solver++ of order 2 (midpoint) is supported, the config asks for {variant}")

    def _set_timesteps(self, n):
        train = self.num_train_timesteps
        spacing = self.config["timestep_spacing"]
        if spacing == "linspace":
            timesteps = np.round(np.linspace(0, train - 1, n + 1))[::-1][:-1].copy()
        elif spacing == "leading":
            timesteps = (np.arange(n + 1) * (train // (n + 1)))[::-1][:-1].astype(np.float64) + self.config["steps_offset"]
        else:
            timesteps = np.round(np.arange(train, 0, -train / n)) - 1.0
        sigmas = self._interpolated_sigmas(timesteps)
        if self.config["use_karras_sigmas"]:
            table = self._train_sigmas()
            sigmas, timesteps = self._karras(table[-1], table[0], n)
            timesteps = np.round(timesteps)
        self.timesteps = timesteps.astype(np.int64)
        self.sigmas = np.concatenate([sigmas, [0.0]]).astype(np.float32)
        self._previous_x0 = None

    @property
    def init_noise_sigma(self) -> float:
        return 1.0

    def scale_model_input(self, sample: np.ndarray, timestep=None) -> np.ndarray:
        return sample

    def add_noise(self, original: np.ndarray, noise: np.ndarray) -> np.ndarray:
        alpha_t, sigma_t, _ = self._alpha_sigma_lambda(self._sigma())
        return (np.float32(alpha_t) * original + np.float32(sigma_t) * noise).astype(np.float32)

    def _alpha_sigma_lambda(self, sigma: float) -> tuple[float, float, float]:
        alpha_t = 1.0 / np.sqrt(sigma**2 + 1.0)
        sigma_t = sigma * alpha_t
        log_snr = float(log64(alpha_t) - log64(sigma_t)) if sigma > 0 else np.inf  # sigma 0: the clean image
        return alpha_t, sigma_t, log_snr

    def step(self, noise_pred, timestep, sample, generator=None):
        self._check_ready()
        n = len(self.timesteps)
        alpha_s, sigma_s, lambda_s = self._alpha_sigma_lambda(self._sigma())
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(self._sigma(1))
        x0 = (sample - np.float32(sigma_s) * noise_pred) / np.float32(alpha_s)
        last_step = self.step_index == n - 1  # final sigma 0: always first order
        h = lambda_t - lambda_s
        expm1_minus_h = float(exp64(np.asarray(-h))) - 1.0 if np.isfinite(h) else -1.0
        result = np.float32(sigma_t / sigma_s) * sample - np.float32(alpha_t * expm1_minus_h) * x0
        if self._previous_x0 is not None and not last_step:
            _, _, lambda_prev = self._alpha_sigma_lambda(self._sigma(-1))
            ratio = (lambda_s - lambda_prev) / h
            d1 = np.float32(1.0 / ratio) * (x0 - self._previous_x0)
            result = result - np.float32(0.5 * alpha_t * expm1_minus_h) * d1
        self._previous_x0 = x0
        self.step_index += 1
        return result.astype(np.float32)


SCHEDULERS = {cls.name: cls for cls in (PNDM, DDIM, Euler, EulerAncestral, DPMSolverMultistep, LMS)}
SCHEDULER_NAMES = ("pndm", "ddim", "euler", "euler_a", "dpm++2m", "dpm++2m_karras", "lms")
_ALIASES = {  # other spellings, and the diffusers class names a scheduler_config.json holds
    "plms": "pndm", "euler-a": "euler_a", "euler_ancestral": "euler_a", "dpmpp_2m": "dpm++2m",
    "dpm++2m karras": "dpm++2m_karras", "dpmpp_2m_karras": "dpm++2m_karras",
    "pndmscheduler": "pndm", "ddimscheduler": "ddim", "eulerdiscretescheduler": "euler",
    "eulerancestraldiscretescheduler": "euler_a", "dpmsolvermultistepscheduler": "dpm++2m", "lmsdiscretescheduler": "lms",
}


def make_scheduler(name: str | None, config: dict | None = None) -> Scheduler:
    """A scheduler by name (or diffusers class name) on ``config``; ``None`` takes the config's ``_class_name``."""
    config = dict(config or SD15_SCHEDULER_CONFIG)
    key = str(name if name is not None else config.get("_class_name", "pndm")).strip().lower()
    key = _ALIASES.get(key, key)
    if key == "dpm++2m_karras":
        return DPMSolverMultistep(config, use_karras_sigmas=True)
    if key not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}")
    return SCHEDULERS[key](config)
