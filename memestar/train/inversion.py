"""DDIM inversion of the tuned clip, and sampling from it (the preview, and the check that tuning helped)."""

from collections.abc import Callable
from functools import partial

import torch
from tqdm import tqdm

from ..models.video_unet import VideoUNet
from ..sampling.ddim import DDIMSchedule
from ..sampling.guidance import guided_output


def guided(video: VideoUNet, text: torch.Tensor, uncond: torch.Tensor | None = None, guidance: float = 1.0):
    """`model_fn(x, t)` for the DDIM loops; classifier-free guidance as one batch of two when guidance > 1."""
    dtype = video.dtype
    texts = text if guidance <= 1 or uncond is None else torch.cat([uncond, text])

    @torch.no_grad()
    def model_fn(x, t):
        return guided_output(lambda x, t, e: video(x.to(dtype), t, e).float(), x, t, texts, guidance)

    return model_fn


def bar(desc: str, quiet: bool, between_steps: Callable[[], None] | None = None):
    """A progress bar over the steps; `between_steps` runs before each (a server lets waiting requests in)."""
    progress = partial(tqdm, desc=desc, unit="step", disable=quiet, dynamic_ncols=True, leave=False)
    if between_steps is None:
        return progress

    def stepping(steps):
        for i in progress(steps):
            between_steps()
            yield i

    return stepping


def invert_clip(
    video: VideoUNet,
    latents: torch.Tensor,
    empty_text: torch.Tensor,
    scheduler_config: dict,
    steps: int,
    quiet: bool = True,
    between_steps: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The noise latents (1 c f h w, fp32) that DDIM with the empty prompt maps back to the clip."""
    schedule = DDIMSchedule(scheduler_config, steps, latents.device)
    return schedule.invert(latents.float(), guided(video, empty_text), bar("inverting", quiet, between_steps))


def sample_from(
    video: VideoUNet,
    start: torch.Tensor,
    text: torch.Tensor,
    uncond: torch.Tensor,
    scheduler_config: dict,
    steps: int,
    guidance: float,
    quiet: bool = True,
    between_steps: Callable[[], None] | None = None,
) -> torch.Tensor:
    schedule = DDIMSchedule(scheduler_config, steps, start.device)
    return schedule.sample(start.float(), guided(video, text, uncond, guidance), bar("preview", quiet, between_steps))
