"""The work of one clip: its FLOPs, from what each kind of step costs and how many of each its settings run.

The costs are counted once per base and shape with torch's `FlopCounterMode` on the meta device (shapes only, no
arithmetic), so SD1.5's figures take seconds on a CPU and equal a GPU's. A clip's work is then its settings'
plan: UNet passes (two on a guided step, one past `guidance_until`; the shallow level alone on a step that reuses
deep features), the decodes of following with `follow_measure` pixels, the final decode and its prompts. Elementwise
work (the samplers, the latent subject measure, warps) is not counted, as FlopCounterMode counts none.
"""

from dataclasses import dataclass, fields, replace

import torch

from ..models.base import load_base
from ..models.vae import decode_pixels, vae_scale_factor
from ..models.video_unet import VideoUNet
from ..runtime.settings import GenSettings
from ..sampling.deep_cache import DeepCache
from ..sampling.follow import followed_steps
from ..sampling.plan import SAMPLERS, loop_plan
from .measure import count_flops

# The default path before issue 29 (2026-12-04): DDIM 25, guidance 7.5 on every step, following by a VAE decode per
# followed step; what the work of today's default is held against.
PREVIOUS_DEFAULT = GenSettings(
    steps=25, guidance=7.5, sampler="ddim", follow_measure="pixels", guidance_until=0.0, cache_interval=1
)
SAVERS = ("follow_measure", "sampler", "steps", "guidance_until", "cache_interval")  # what the default may change


@dataclass
class StepCosts:
    """FLOPs of each kind of work in a generation, for one clip."""

    text: int  # one prompt through the text encoder
    unet: int  # the whole video UNet, one pass
    unet_reuse: int  # its shallow level alone, on deep features kept from an earlier step
    decode: int  # the VAE decoder on every frame
    scheduler_config: dict


def count_step_costs(base: str, frames: int, size: int) -> StepCosts:
    """Counts each kind of work on `base` (as `load_base` takes it) for clips of `frames` frames of `size` px."""
    b = load_base(base)
    video = VideoUNet(b.unet)
    cache = DeepCache(video.unet)
    side = size // vae_scale_factor(b.vae)
    video.to("meta")
    b.vae.to("meta")
    b.text_encoder.to("meta")
    x = torch.empty(1, b.vae.config.latent_channels, frames, side, side, device="meta")
    ids = torch.zeros(1, b.tokenizer.model_max_length, dtype=torch.long, device="meta")
    text = torch.empty(1, b.tokenizer.model_max_length, b.text_encoder.config.hidden_size, device="meta")
    t = torch.zeros(1, dtype=torch.long, device="meta")
    with torch.inference_mode():
        unet = count_flops(lambda: video(x, t, text))
        with cache.mode("store"):
            video(x, t, text)
        with cache.mode("reuse"):
            reuse = count_flops(lambda: video(x, t, text))
        return StepCosts(
            text=count_flops(lambda: b.text_encoder(ids)),
            unet=unet,
            unet_reuse=reuse,
            decode=count_flops(lambda: decode_pixels(b.vae, x)),
            scheduler_config=b.scheduler_config,
        )


def clip_work(
    costs: StepCosts, s: GenSettings, follows: bool, caches: bool = True, halves_unguided: bool = True
) -> dict[str, int]:
    """FLOPs of one clip sampled with `s` (following a track or not), by part: text, unet, follow (decodes),
    decode, total. On a backend that caches deep features or not (`caches`), and whose unguided steps run one UNet
    pass or, as the exported graphs, two (`halves_unguided`)."""
    timesteps = SAMPLERS[s.sampler](costs.scheduler_config, s.steps).timestep_list
    plan = loop_plan(
        timesteps, costs.scheduler_config, s.guidance > 1, s.guidance_until, s.cache_interval if caches else 1
    )
    unet = sum(
        (2 if guided or not halves_unguided else 1) * (costs.unet_reuse if mode == "reuse" else costs.unet)
        for guided, mode in plan
    )
    follow = (
        followed_steps(timesteps, costs.scheduler_config) * costs.decode
        if follows and s.follow_measure == "pixels"
        else 0
    )
    work = {"text": costs.text * (2 if s.guidance > 1 else 1), "unet": unet, "follow": follow, "decode": costs.decode}
    return {**work, "total": sum(work.values())}


def work_points(default: GenSettings | None = None) -> dict[str, GenSettings]:
    """The previous default, each of today's default's savers added to it alone, and today's default: what each buys."""
    default = default or GenSettings()
    points = {"previous default": PREVIOUS_DEFAULT}
    for name in SAVERS:
        if getattr(default, name) != getattr(PREVIOUS_DEFAULT, name):
            points[f"previous + {name} {getattr(default, name)}"] = replace(
                PREVIOUS_DEFAULT, **{name: getattr(default, name)}
            )
    points["default"] = default
    return points


def work_table(costs: StepCosts, follows: bool = True) -> dict[str, dict]:
    """FLOPs per clip of each of `work_points`, and its share of the previous default's."""
    points = work_points()
    rows = {name: clip_work(costs, s, follows) for name, s in points.items()}
    before = rows["previous default"]["total"]
    return {
        name: {
            **rows[name],
            "share_of_previous": rows[name]["total"] / before,
            "settings": {f.name: getattr(s, f.name) for f in fields(s) if f.name in ("guidance", *SAVERS)},
        }
        for name, s in points.items()
    }
