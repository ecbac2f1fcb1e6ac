"""Deterministic DDIM (eta = 0): sampling steps and their inverse, from a base's scheduler config.

Timesteps and the alpha products are precomputed as tensors, so a loop does no host work per step.
Follows diffusers' `DDIMScheduler` (timestep spacing, `steps_offset`, `set_alpha_to_one`, epsilon and v
prediction), which the tests hold it to.
"""

import numpy as np
import torch

from ..errors import ScheduleError


def alphas_cumprod(config: dict) -> torch.Tensor:
    """The training noise schedule: products of (1 - beta) over the `num_train_timesteps` steps."""
    n, start, end = config.get("num_train_timesteps", 1000), config["beta_start"], config["beta_end"]
    schedule = config.get("beta_schedule", "linear")
    if schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, n, dtype=torch.float32) ** 2
    elif schedule == "linear":
        betas = torch.linspace(start, end, n, dtype=torch.float32)
    else:
        raise ScheduleError(f"beta_schedule {schedule!r} is not supported (scaled_linear or linear)")
    return torch.cumprod(1 - betas, dim=0)


def check_supported(config: dict) -> None:
    """Both samplers follow SD's plain schedule: settings that change it are refused, not ignored."""
    unsupported = [k for k in ("thresholding", "rescale_betas_zero_snr", "trained_betas") if config.get(k)]
    if unsupported:
        raise ScheduleError(f"scheduler settings not supported: {', '.join(unsupported)}")


class DDIMSchedule:
    def __init__(self, config: dict, steps: int, device: str | torch.device = "cpu"):
        n = config.get("num_train_timesteps", 1000)
        most = n - config.get("steps_offset", 0)
        if not 1 <= steps <= most:
            raise ScheduleError(f"DDIM takes 1 to {most} steps, not {steps}: lower --steps (or --inversion-steps)")
        spacing = config.get("timestep_spacing", "leading")
        if spacing == "leading":
            timesteps = np.arange(0, steps) * (n // steps) + config.get("steps_offset", 0)
        elif spacing == "trailing":
            timesteps = np.round(np.arange(n, 0, -n / steps)).astype(np.int64)[::-1] - 1
        elif spacing == "linspace":
            timesteps = np.linspace(0, n - 1, steps).round()
        else:
            raise ScheduleError(f"timestep_spacing {spacing!r} is not supported")
        check_supported(config)
        self.prediction_type = config.get("prediction_type", "epsilon")
        # diffusers clips x0 unless told not to (SD's configs say clip_sample: false)
        self.clip_range = config.get("clip_sample_range", 1.0) if config.get("clip_sample", True) else None
        acp = alphas_cumprod(config)
        final = torch.tensor(1.0) if config.get("set_alpha_to_one", True) else acp[0]
        t = torch.from_numpy(timesteps[::-1].copy()).long()  # high noise first (copy: a negative stride)
        prev = t - n // steps
        self.timesteps = t.to(device)
        self.timestep_list = t.tolist()  # the same on the host: decisions per step without a device sync
        self.alpha = acp[t].float().to(device)
        self.alpha_prev = torch.where(prev >= 0, acp[prev.clamp(min=0)], final).float().to(device)

    def __len__(self) -> int:
        return len(self.timesteps)

    def _x0_eps(self, model_output, x, alpha):
        if self.prediction_type == "epsilon":
            eps = model_output
            x0 = (x - (1 - alpha).sqrt() * eps) / alpha.sqrt()
        elif self.prediction_type == "v_prediction":
            x0 = alpha.sqrt() * x - (1 - alpha).sqrt() * model_output
            eps = alpha.sqrt() * model_output + (1 - alpha).sqrt() * x
        else:
            raise ScheduleError(f"prediction_type {self.prediction_type!r} is not supported")
        if self.clip_range is not None:  # eps stays the model's, as diffusers' default use_clipped_model_output=False
            x0 = x0.clamp(-self.clip_range, self.clip_range)
        return x0, eps

    def step(self, model_output: torch.Tensor, i: int, x: torch.Tensor) -> torch.Tensor:
        """x at step i (timestep `timesteps[i]`) -> x one step less noisy."""
        x0, eps = self._x0_eps(model_output, x, self.alpha[i])
        return self.alpha_prev[i].sqrt() * x0 + (1 - self.alpha_prev[i]).sqrt() * eps

    def invert_step(self, model_output: torch.Tensor, i: int, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `step(i)`, with the model evaluated at timestep `timesteps[i]` on the less noisy x."""
        x0, eps = self._x0_eps(model_output, x, self.alpha_prev[i])
        return self.alpha[i].sqrt() * x0 + (1 - self.alpha[i]).sqrt() * eps

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, i: int) -> torch.Tensor:
        """Clean latents `x0` noised with `noise` to the level step i starts from (SDEdit's start)."""
        return self.alpha[i].sqrt() * x0 + (1 - self.alpha[i]).sqrt() * noise

    def sample(self, x: torch.Tensor, model_fn, progress=iter, first: int = 0) -> torch.Tensor:
        """Denoises `x` over the schedule from step `first` (0: the whole); `model_fn(x, t)` returns the (guided)
        model output. `progress` wraps the step range (e.g. a tqdm bar)."""
        for i in progress(range(first, len(self))):
            x = self.step(model_fn(x, self.timesteps[i]), i, x)
        return x

    def invert(self, x: torch.Tensor, model_fn, progress=iter) -> torch.Tensor:
        """Runs the schedule backwards: clean latents -> the noise that DDIM sampling maps back to them."""
        for i in progress(range(len(self) - 1, -1, -1)):
            x = self.invert_step(model_fn(x, self.timesteps[i]), i, x)
        return x
