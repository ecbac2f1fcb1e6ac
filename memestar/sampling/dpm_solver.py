"""DPM-Solver++ 2M: a second-order multistep sampler that needs fewer steps than DDIM for the same quality.

Follows diffusers' `DPMSolverMultistepScheduler` defaults (`dpmsolver++`, order 2, midpoint, final sigma
zero, so the first and last steps are first order), which the tests hold it to. Sigmas, alphas and the
per-step coefficients are precomputed on the device.
"""

import numpy as np
import torch

from ..errors import ScheduleError
from .ddim import alphas_cumprod, check_supported


class DPMSolverPP2M:
    def __init__(self, config: dict, steps: int, device: str | torch.device = "cpu"):
        n = config.get("num_train_timesteps", 1000)
        if not 1 <= steps <= n // 2:
            raise ScheduleError(f"DPM-Solver++ takes 1 to {n // 2} steps, not {steps}: lower --steps")
        check_supported(config)
        spacing = config.get("timestep_spacing", "linspace")
        if spacing == "linspace":
            timesteps = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
        elif spacing == "leading":
            timesteps = (np.arange(0, steps + 1) * (n // (steps + 1))).round()[::-1][:-1].astype(np.int64)
            timesteps = timesteps + config.get("steps_offset", 0)
        elif spacing == "trailing":
            timesteps = np.arange(n, 0, -n / steps).round().astype(np.int64) - 1
        else:
            raise ScheduleError(f"timestep_spacing {spacing!r} is not supported")
        self.prediction_type = config.get("prediction_type", "epsilon")
        acp = alphas_cumprod(config)
        all_sigmas = np.array(((1 - acp) / acp) ** 0.5)
        sigmas = np.interp(timesteps, np.arange(len(all_sigmas)), all_sigmas)
        sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # ends at sigma 0
        alpha = 1 / (sigmas**2 + 1).sqrt()
        sigma = sigmas * alpha
        lam = alpha.log() - sigma.log()  # log signal-to-noise; -inf... +inf at the end
        self.timesteps = torch.from_numpy(timesteps.copy()).to(device)
        self.timestep_list = timesteps.tolist()  # the same on the host: decisions per step without a device sync
        self.alpha, self.sigma, self.lam = (v.to(device) for v in (alpha, sigma, lam))

    def __len__(self) -> int:
        return len(self.timesteps)

    def _x0(self, model_output, x, i):
        if self.prediction_type == "epsilon":
            return (x - self.sigma[i] * model_output) / self.alpha[i]
        if self.prediction_type == "v_prediction":
            return self.alpha[i] * x - self.sigma[i] * model_output
        raise ScheduleError(f"prediction_type {self.prediction_type!r} is not supported")

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, i: int) -> torch.Tensor:
        """Clean latents `x0` noised with `noise` to the level step i starts from (SDEdit's start)."""
        return self.alpha[i] * x0 + self.sigma[i] * noise

    def sample(self, x: torch.Tensor, model_fn, progress=iter, first: int = 0) -> torch.Tensor:
        """Denoises `x` over the schedule from step `first` (0: the whole; its first step is first order);
        `model_fn(x, t)` returns the (guided) model output."""
        last = len(self) - 1
        previous_x0 = None
        for i in progress(range(first, len(self))):
            x0 = self._x0(model_fn(x, self.timesteps[i]), x, i)
            h = self.lam[i + 1] - self.lam[i]
            phi = self.alpha[i + 1] * (torch.exp(-h) - 1.0)
            x = (self.sigma[i + 1] / self.sigma[i]) * x - phi * x0
            if previous_x0 is not None and i != last:  # second order: a correction from the previous x0
                r = (self.lam[i] - self.lam[i - 1]) / h
                x = x - 0.5 * phi * (x0 - previous_x0) / r
            previous_x0 = x0
        return x
