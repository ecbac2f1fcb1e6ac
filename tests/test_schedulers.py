"""Our DDIM and DPM-Solver++ 2M against diffusers' schedulers on every spacing and prediction type."""

import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

from memestar.models.random_base import SD_SCHEDULER
from memestar.sampling.ddim import DDIMSchedule, alphas_cumprod
from memestar.sampling.dpm_solver import DPMSolverPP2M
from memestar.sampling.plan import first_step


def toy_model(x, t):
    return torch.sin(3 * x + t / 100.0)


def diffusers_sample(scheduler, x):
    for t in scheduler.timesteps:
        x = scheduler.step(toy_model(x, t), t, x).prev_sample
    return x


CASES = [
    (spacing, prediction, clip)
    for spacing in ("leading", "trailing", "linspace")
    for prediction in ("epsilon", "v_prediction")
    for clip in (False, True)
]


@pytest.mark.parametrize("spacing, prediction, clip", CASES)
def test_ddim_matches_diffusers(spacing, prediction, clip):
    config = dict(SD_SCHEDULER, timestep_spacing=spacing, prediction_type=prediction, clip_sample=clip)
    theirs = DDIMScheduler(**config)
    theirs.set_timesteps(20)
    ours = DDIMSchedule(config, 20)
    assert torch.equal(theirs.timesteps, ours.timesteps)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = diffusers_sample(theirs, x.clone())
    assert (ours.sample(x, toy_model) - expected).abs().max() < 1e-5


@pytest.mark.parametrize("spacing, prediction", [(s, p) for s, p, c in CASES if not c])
@pytest.mark.parametrize("steps", [5, 25])
def test_dpm_solver_matches_diffusers(spacing, prediction, steps):
    config = dict(SD_SCHEDULER, timestep_spacing=spacing, prediction_type=prediction)
    theirs = DPMSolverMultistepScheduler.from_config(config)
    theirs.set_timesteps(steps)
    ours = DPMSolverPP2M(config, steps)
    assert torch.equal(theirs.timesteps, ours.timesteps)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = diffusers_sample(theirs, x.clone())
    assert (ours.sample(x, toy_model) - expected).abs().max() < 1e-4


def test_ddim_inversion_undoes_sampling():
    """With a model that ignores its input, inverting a sample gives back the start exactly (up to rounding)."""
    schedule = DDIMSchedule(SD_SCHEDULER, 10)
    constant = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    start = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    clean = schedule.sample(start, lambda x, t: constant)
    assert (schedule.invert(clean, lambda x, t: constant) - start).abs().max() < 1e-4


@pytest.mark.parametrize("cls, steps", [(DDIMSchedule, 0), (DDIMSchedule, 1000), (DPMSolverPP2M, 501)])
def test_step_counts_out_of_range_are_refused(cls, steps):
    with pytest.raises(ValueError, match="steps"):
        cls(SD_SCHEDULER, steps)


@pytest.mark.parametrize("cls", [DDIMSchedule, DPMSolverPP2M])
def test_a_loop_from_a_strengths_step_denoises_what_was_noised_to_it(cls):
    """SDEdit's start (an animated still): clean latents noised to step k and sampled from step k come back whole
    under a model that knows them, and a strength picks the step whose timestep it reaches."""
    config = dict(SD_SCHEDULER, set_alpha_to_one=True)  # DDIM's last step lands on the clean latents
    schedule = cls(config, 10)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(1, 4, 2, 8, 8, generator=g), torch.randn(1, 4, 2, 8, 8, generator=g)
    acp = alphas_cumprod(config)

    def oracle(x, t):  # the noise in x, for a clip known to be x0
        a = acp[int(t)]
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    timesteps = schedule.timestep_list
    assert first_step(timesteps, SD_SCHEDULER, 1.0) == 0 and first_step(timesteps, SD_SCHEDULER, 0.0) == 10
    k = first_step(timesteps, SD_SCHEDULER, 0.3)
    assert timesteps[k] <= 300 < timesteps[k - 1]
    calls = []
    out = schedule.sample(schedule.noised(x0, noise, k), lambda x, t: calls.append(int(t)) or oracle(x, t), first=k)
    assert calls == timesteps[k:]
    assert (out - x0).abs().max() < 1e-4
