"""`meme eval`'s and `meme demo`'s options and the plan of the tiny world they run, declared once (`options.py`):
light, so that the CLI reads them without torch."""

from dataclasses import dataclass, replace
from pathlib import Path

from ..checks import (
    MAX_CACHE_INTERVAL,
    MAX_GUIDANCE,
    MAX_STEPS,
    MAX_TRAIN_STEPS,
    check_cache_interval,
    check_guidance,
    check_guidance_until,
    check_int,
    check_lr,
    check_steps,
    check_variation,
)
from ..errors import MemeError
from ..models.layout import (
    DEFAULT_FRAME_ATTENTION,
    DEFAULT_FRAME_POSITIONS,
    DEFAULT_GROUP_NORM,
    FRAME_ATTENTION_MODES,
    GROUP_NORM_MODES,
    TUNED,
)
from ..options import option
from ..runtime.settings import LAYOUT_VARIATION, MIX_VARIATION, STARTS, GenSettings
from ..sampling.names import FOLLOW_MEASURES, SAMPLER_NAMES
from ..train.options import DEFAULT_MOTION_LOSS, TuneSettings, parse_motion_loss
from .worlds import WORLDS

ALL_MOTIONS = tuple(dict.fromkeys(m for w in WORLDS.values() for m in w.motions))

# Tuning's learning rate on the tiny world: on the 2026-12 base, 1e-3 kept the most motion of 1e-4, 3e-4, 1e-3 and
# 3e-3 (0.74 over three motions, 3e-3: 0.45 on sliding; benchmarks/results/eval-tiny-screen-2026-12-01.md).
WORLD_LR = 1e-3


@dataclass
class EvalOptions:
    world: str = option(
        "shapes", "The world: shapes (the tiny base's) or emoji (the emoji base's).", choices=tuple(WORLDS)
    )
    motions: tuple[str, ...] = option(
        (), "Motions, comma-separated (default: every motion of the world).", choices=ALL_MOTIONS
    )
    subjects: int = option(4, "New subjects per motion (at most 4).", low=1, high=4)
    steps: int = option(150, "Tuning steps per meme.", low=1, high=MAX_TRAIN_STEPS)
    lr: float = option(WORLD_LR, "Tuning learning rate.", low=0, high=1)
    losses: tuple[str, ...] = option(
        (DEFAULT_MOTION_LOSS,),
        "Tuning losses to compare, one tuning run each, "
        "separated by ';' (each as --motion-loss takes it: "
        "mse;debiased;mse=1,residual=1).",
        separator=";",
    )
    tunes: tuple[str, ...] = option(
        (TuneSettings.tuned,),
        "What tuning changes, compared: all, temporal (one tuning run each, for each loss).",
        choices=TUNED,
    )
    positions: tuple[bool, ...] = option(
        (DEFAULT_FRAME_POSITIONS,),
        "Tune with frame positions (on), without (off), or both: on,off.",
        flags=("--frame-positions",),
    )
    attentions: tuple[str, ...] = option(
        (DEFAULT_FRAME_ATTENTION,),
        "Whose keys each frame's self-attention sees, compared (one tuning run each, and one untuned "
        "reference each): first-previous, first-previous-self.",
        choices=FRAME_ATTENTION_MODES,
        flags=("--frame-attention",),
    )
    starts: tuple[str, ...] = option(STARTS, "Starts to compare: inversion, layout, mix, noise.", choices=STARTS)
    mix: float = option(MIX_VARIATION, "The noise share of the mix start (--variation).", low=0, high=1)
    layout: float = option(LAYOUT_VARIATION, "The layout start's --variation (its cut).", low=0, high=1)
    samplers: tuple[str, ...] = option(
        (GenSettings.sampler,), "Samplers to compare: ddim, dpm++.", choices=SAMPLER_NAMES
    )
    gen_steps: tuple[int, ...] = option(
        (GenSettings.steps,), "Sampling step counts to compare, e.g. 4,8,12,25.", low=1, high=MAX_STEPS
    )
    follows: tuple[bool, ...] = option(
        (True,), "Follow the clip's subject track (on), not (off), or compare both: on,off.", flags=("--follow",)
    )
    guidances: tuple[float, ...] = option(
        (5.0,), "Guidance scales to compare, e.g. 3,5.", low=1, high=MAX_GUIDANCE, flags=("--guidance",)
    )
    follow_measures: tuple[str, ...] = option(
        (GenSettings.follow_measure,),
        "Where a followed subject is measured, compared: latents, pixels.",
        choices=FOLLOW_MEASURES,
        flags=("--follow-measure",),
    )
    guidance_untils: tuple[float, ...] = option(
        (GenSettings.guidance_until,),
        "Shares of the noise schedule below which guidance stops, compared, e.g. 0,0.5.",
        low=0,
        high=1,
        flags=("--guidance-until",),
    )
    cache_intervals: tuple[int, ...] = option(
        (GenSettings.cache_interval,),
        "Deep-feature cache intervals to compare, e.g. 1,2,3.",
        low=1,
        high=MAX_CACHE_INTERVAL,
        flags=("--cache-interval",),
    )
    seeds: int = option(2, "Seeds per subject and start (their difference: variety).", low=1, high=8)
    group_norm: str = DEFAULT_GROUP_NORM
    inversion_steps: int = 25
    untuned: bool = option(True, "Also score an untuned meme: what tuning adds.", flags=("--untuned/--no-untuned",))
    base: str | None = option(None, "Base model (default: the world's own, tiny or emoji).")
    seed: int = 0
    quiet: bool = True
    keep: Path | None = option(None, "Keep the memes and GIFs in this folder (default: a temporary folder).")

    def resolved(self) -> "EvalOptions":
        """The world's own base and motions where none are named."""
        world = WORLDS[self.world] if self.world in WORLDS else None
        return replace(
            self,
            base=self.base or (world.base if world else None),
            motions=self.motions or (world.motions if world else ()),
        )

    def check(self) -> "EvalOptions":
        """The options with the world's own base and motions where none are named (`resolved`), checked."""
        if self.world not in WORLDS:
            raise MemeError(f"--world must be one of {', '.join(WORLDS)}")
        self = self.resolved()
        plan = WORLDS[self.world].plan
        for name, chosen, allowed in (
            ("--motions", self.motions, tuple(plan)),
            ("--starts", self.starts, STARTS),
            ("--samplers", self.samplers, SAMPLER_NAMES),
        ):
            if not chosen or set(chosen) - set(allowed):
                raise MemeError(f"{name} must name some of {', '.join(allowed)}")
        if not self.losses:
            raise MemeError("--losses must name at least one tuning loss")
        if not self.tunes or set(self.tunes) - set(TUNED):
            raise MemeError(f"--tunes must name some of {', '.join(TUNED)}")
        if not self.positions or set(self.positions) - {True, False}:
            raise MemeError("--frame-positions must be on, off or on,off")
        if not self.attentions or set(self.attentions) - set(FRAME_ATTENTION_MODES):
            raise MemeError(f"--frame-attention must name some of {', '.join(FRAME_ATTENTION_MODES)}")
        for loss in self.losses:
            parse_motion_loss(loss)
        if not self.follows or set(self.follows) - {True, False}:
            raise MemeError("--follow must be on, off or on,off")
        if not self.gen_steps:
            raise MemeError("--gen-steps must give at least one step count")
        for n in self.gen_steps:
            check_steps(n, "--gen-steps")
        if not self.guidances:
            raise MemeError("--guidance must give at least one scale")
        for g in self.guidances:
            check_guidance(g)
        if not self.follow_measures or set(self.follow_measures) - set(FOLLOW_MEASURES):
            raise MemeError(f"--follow-measure must name some of {', '.join(FOLLOW_MEASURES)}")
        if not self.guidance_untils or not self.cache_intervals:
            raise MemeError("--guidance-until and --cache-interval must give at least one value each")
        for until in self.guidance_untils:
            check_guidance_until(until)
        for interval in self.cache_intervals:
            check_cache_interval(interval)
        check_int("--subjects", self.subjects, 1, min(len(t) for _, t in plan.values()))
        check_int("--seeds", self.seeds, 1, 8)
        check_steps(self.steps, "--steps", MAX_TRAIN_STEPS)
        check_steps(self.inversion_steps, "--inversion-steps")
        check_lr(self.lr)
        check_variation(self.mix)
        check_variation(self.layout)
        if self.group_norm not in GROUP_NORM_MODES:
            raise MemeError(f"--group-norm must be one of {', '.join(GROUP_NORM_MODES)}")
        return self


# tuning steps of each meme per world: the emoji demo's two memes in under two minutes on two CPU cores (70 steps:
# 88 s, mean emoji right / source absent / trajectory 0.67 / 1.00 / 0.93; 100 steps: 117 s, 0.66 / 1.00 / 0.93;
# measured 2026-12-07 with each frame's own keys, docs/tiny-world.md)
DEMO_STEPS = {"shapes": 100, "emoji": 70}
DEMO_OUT = Path("demo")


@dataclass
class DemoOptions:
    out: Path = option(DEMO_OUT, "Folder for the GIFs and the contact sheet.", flags=("-o", "--out"))
    steps: int | None = option(
        None,
        "Tuning steps of each meme (default: " + ", ".join(f"{n} on {w}" for w, n in DEMO_STEPS.items()) + ").",
        low=1,
        high=MAX_TRAIN_STEPS,
    )
    world: str = option(
        "emoji", "The world: emoji (the emoji base: two memes) or shapes (the tiny base).", choices=tuple(WORLDS)
    )
