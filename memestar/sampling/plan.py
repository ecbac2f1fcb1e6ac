"""The loop's plan, the same on every backend: the samplers by name, their schedules built once per device, and per
step whether it runs guidance and its deep-feature cache mode (what a backend runs and what `bench/work.py` counts)."""

import torch

from .ddim import DDIMSchedule
from .deep_cache import cache_plan
from .dpm_solver import DPMSolverPP2M
from .guidance import guided_steps
from .names import SAMPLER_NAMES

SAMPLERS = dict(zip(SAMPLER_NAMES, (DDIMSchedule, DPMSolverPP2M)))


class Schedules:
    """A backend's sampler schedules by (kind, steps): built once on its device, then reused."""

    def __init__(self, scheduler_config: dict, device: torch.device):
        self.config, self.device, self._built = scheduler_config, device, {}

    def __call__(self, kind: str, steps: int):
        if (kind, steps) not in self._built:
            self._built[kind, steps] = SAMPLERS[kind](self.config, steps, self.device)
        return self._built[kind, steps]


def loop_plan(
    timesteps: list[int], scheduler_config: dict, guided: bool, guidance_until: float = 0.0, cache_interval: int = 1
) -> list[tuple[bool, str | None]]:
    """Per step of a schedule (its timesteps, high noise first): whether it runs guidance, and its deep-feature
    cache mode (`sampling/deep_cache.py`). What a backend runs (`Backend.step_plan`) and what `bench/work.py` counts."""
    guiding = guided_steps(timesteps, scheduler_config, guidance_until) if guided else [False] * len(timesteps)
    return list(zip(guiding, cache_plan(guiding, cache_interval)))


def first_step(timesteps: list[int], scheduler_config: dict, strength: float) -> int:
    """The step a loop starts from to redraw `strength` (0 to 1) of a clip (SDEdit): the first whose timestep is at
    most `strength` of training's (timesteps high noise first); 0 runs every step, `len(timesteps)` none."""
    return sum(t > strength * scheduler_config.get("num_train_timesteps", 1000) for t in timesteps)


def guidance_scales(guidance, n: int, device: torch.device) -> torch.Tensor:
    """One guidance scale per clip, `(n,)` fp32 on `device`, from a float or a sequence/tensor of n."""
    g = torch.as_tensor(guidance, dtype=torch.float32).reshape(-1).to(device)
    if len(g) not in (1, n):
        raise ValueError(f"{len(g)} guidance scales for {n} clips")
    return g.expand(n).clone()
