"""How one clip is sampled (`GenSettings`), a request for one (`GenRequest`), and the variants of one prompt: what
`Meme.generate`, `meme gen`, `meme serve` and the bench take."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..checks import (
    MAX_CACHE_INTERVAL,
    MAX_FPS,
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MIN_FPS,
    check_cache_interval,
    check_choice,
    check_fps,
    check_guidance,
    check_guidance_until,
    check_seed,
    check_steps,
    check_strength,
    check_variants,
    check_variation,
    plain_text,
)
from ..errors import MemeError
from ..options import option
from ..prompts import action_alone, guess_template, subject_of
from ..sampling.names import FOLLOW_MEASURES, SAMPLER_NAMES

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ..formats.meme_folder import MemeManifest
    from ..formats.subject_file import SubjectManifest

STARTS = ("inversion", "layout", "mix", "noise")
MIN_DEFAULT_FPS = 8.0
# The variation of variants when none is given: on the tiny world it keeps trajectory correlation at 0.73 (0.83 at
# 0, 0.68 at 0.5, 0.04 at 1) while variants differ by 4.5 levels per pixel (benchmarks/results/variation-tiny-*).
VARIANTS_VARIATION = 0.25
# The variation of `--start mix` when none is given: fresh noise with a little of the inversion in it
# (MotionDirector's noise prior), chosen by `meme eval` (README).
MIX_VARIATION = 0.5
# The variation of `--start layout` when none is given: the inversion below half the latent's Nyquist frequency, the
# seed's noise above: of the cuts a pilot tried (0.25, 0.5, 0.75) the middle one, motion and shape both (README).
LAYOUT_VARIATION = 0.5
DEFAULT_VARIATIONS = {"mix": MIX_VARIATION, "layout": LAYOUT_VARIATION}  # of the starts that take one; others: 0
FOLLOWS = ("auto", "on", "off")
# An animated photo is read as the photo's in 0.98 / 0.91 of frames (running / popping; 0.94 the ceiling) at 0.2 of
# the schedule, 0.61 / 0.39 at 0.3 and 0.31 / 0.20 at 0.5, where the meme draws its own source over it (the demo's
# memes, emoji the tuning never saw, the default path: benchmarks/results/animated-still-2026-12-07.md)
STILL_STRENGTH = 0.2


@dataclass
class GenSettings:
    """How one clip is sampled: the defaults of `Meme.generate`, `meme gen`, `meme serve` and the bench."""

    seed: int = option(
        0,
        "Seed of the start noise (with --start layout, mix or noise, or a --variation).",
        low=0,
        high=MAX_SEED,
        body=True,
    )
    # DDIM 10, guidance down to timestep 200, deep features every other step, the subject measured on the latents:
    # of the points `meme eval` measured, the least work (0.14 of DDIM 25's at SD1.5 size, 256 px) within 0.02 of
    # every quality figure of DDIM 12 from the inversion and the mix (benchmarks/results/eval-tiny-work-savers-*)
    steps: int = option(10, "Denoising steps.", low=1, high=MAX_STEPS, body=True)
    guidance: float = option(
        7.5, "Classifier-free guidance scale; 1 means no guidance.", low=1, high=MAX_GUIDANCE, body=True
    )
    negative: str = option("", "Negative prompt.", max_length=MAX_PROMPT_CHARS, body=True)
    sampler: str = option("ddim", "The sampler.", choices=SAMPLER_NAMES, body=True)
    # `starts.py`: where sampling starts
    start: str = option(
        "inversion",
        "inversion (keeps the clip's motion), layout (its coarse layout, the detail from "
        "the seed's noise: keeps where the subject is, frees its shape), mix (the seed's noise with "
        "some of the inversion) or noise.",
        choices=STARTS,
        body=True,
    )
    # None: 0 for one clip from the inversion (the inversion as stored), VARIANTS_VARIATION for variants (else they
    # would be one clip N times), DEFAULT_VARIATIONS for the mix and layout starts
    variation: float | None = option(
        None,
        "How much of the seed's noise to blend into the inversion, 0 to 1 "
        "(default: 0 for one clip, the same clip for every seed; "
        f"{VARIANTS_VARIATION} with --variants; {MIX_VARIATION} with --start mix; "
        f"{LAYOUT_VARIATION} with --start layout, where it is the cut: the inversion is "
        "kept below 1 - variation of the Nyquist frequency).",
        low=0,
        high=1,
        body=True,
    )
    fps: float | None = option(
        None, f"Frame rate (default: the clip's, at least {MIN_DEFAULT_FPS:g}).", low=MIN_FPS, high=MAX_FPS, body=True
    )
    follow: str = option(
        "auto",
        "Hold the subject on the clip's subject track while sampling (one subject on a "
        "plain background, as a sticker): on, off, or auto (on where the meme has a track).",
        choices=FOLLOWS,
        body=True,
    )
    follow_measure: str = option(
        "latents",
        "Where a followed subject is measured: latents (no decoder in the loop) "
        "or pixels (a VAE decode in each of the first 70% of the steps).",
        choices=FOLLOW_MEASURES,
        body=True,
    )
    # `sampling/guidance.py`
    guidance_until: float = option(
        0.2,
        "Guide only the steps whose timestep is at or above this share of the noise "
        "schedule, 0 to 1; later steps run the prompt alone, at half the work (0: every "
        "step).",
        low=0,
        high=1,
        body=True,
    )
    # `sampling/deep_cache.py`
    cache_interval: int = option(
        2,
        "Compute the UNet's deep features every this many steps and reuse them between "
        "(torch backend), 1 to 8 (1: every step whole).",
        low=1,
        high=MAX_CACHE_INTERVAL,
        body=True,
    )

    # `meme gen --image`: how far the placed still is noised before the meme denoises it (SDEdit's strength)
    strength: float = option(
        STILL_STRENGTH,
        "With a photo (--image; a gen body's image): how much of the still placed along the track the "
        "meme redraws, 0 (none) to 1 (all: nothing of the photo is kept); higher moves it more "
        "naturally, lower keeps more of the photo.",
        low=0,
        high=1,
        body=True,
    )

    def check(self) -> GenSettings:
        check_seed(self.seed)
        check_steps(self.steps)
        check_guidance(self.guidance)
        check_choice("--sampler", self.sampler, SAMPLER_NAMES)
        check_choice("--start", self.start, STARTS)
        check_choice("--follow", self.follow, FOLLOWS)
        check_choice("--follow-measure", self.follow_measure, FOLLOW_MEASURES)
        check_guidance_until(self.guidance_until)
        check_cache_interval(self.cache_interval)
        check_strength(self.strength)
        if self.variation is not None:
            check_variation(self.variation)
        check_fps(self.fps)
        if not isinstance(self.negative, str):
            raise MemeError("the negative prompt must be plain text")
        plain_text(self.negative, "the negative prompt")
        return self

    @property
    def noise_share(self) -> float:
        """How much of the start latents comes from the seed's noise: a share of their variance, or with the layout
        start the cut (the inversion below 1 - v of Nyquist); 0 the inversion, 1 fresh noise."""
        if self.start == "noise":
            return 1.0
        if self.variation is not None:
            return self.variation
        return DEFAULT_VARIATIONS.get(self.start, 0.0)

    @property
    def batch_key(self) -> tuple:
        """Requests with the same key can run as one batch: one schedule with the same steps guided and cached,
        following (measured alike) or not."""
        return (
            self.sampler,
            self.steps,
            self.guidance > 1,
            self.follow,
            self.follow_measure,
            self.guidance_until,
            self.cache_interval,
        )


def follows(manifest: MemeManifest, s: GenSettings, name: str) -> bool:
    """Whether `s` holds the subject on the meme's subject track; `--follow on` for a meme without one is an error."""
    if s.follow == "on" and manifest.subject_track is None:
        raise MemeError(
            f"meme {name} has no subject track to follow (its clip has no plain background, or it was "
            f"trained before meme-star tracked subjects): use --follow off, or retrain it"
        )
    return s.follow == "on" or (s.follow == "auto" and manifest.subject_track is not None)


@dataclass
class GenRequest:
    prompt: str
    settings: GenSettings = field(default_factory=GenSettings)
    image: np.ndarray | None = None  # a still's subject to animate, RGBA `(h, w, 4)` uint8 (`still.cut_out`)
    # a learned subject the prompt names by its token, read once: (manifest, embedding) (`subjects.subject_for`)
    subject: tuple[SubjectManifest, torch.Tensor] | None = None

    @property
    def batch_key(self) -> tuple:
        """Requests with the same key run as one batch: the settings' key, and where the loop starts (an animated
        still's strength; None for a clip from noise)."""
        return (*self.settings.batch_key, None if self.image is None else self.settings.strength)


def still_action(manifest: MemeManifest, name: str) -> str:
    """What a photo is animated with when no prompt is given, by meme `name`: the meme's action alone ("{subject}
    popping" -> "popping": the photo's subject is not the base's to name). A meme without a subject track has nowhere
    to place a photo: a one-line error."""
    if manifest.subject_track is None:
        raise MemeError(
            f"meme {name} has no subject track to place a still on (its clip has no plain background, or it was "
            f"trained before meme-star tracked subjects): animate stills with a meme of one subject on a plain "
            f"background, or retrain this one"
        )
    return action_alone(manifest.template or guess_template(manifest.prompt)) or manifest.prompt


def still_negative(manifest: MemeManifest, settings: GenSettings) -> GenSettings:
    """`settings` for an unnamed photo (`still_action`): with no negative prompt, the meme's own subject, which the
    tuned meme otherwise draws over the photo at strengths from 0.3 (a named photo keeps more without it:
    benchmarks/results/animated-still-2026-12-07.md)."""
    if settings.negative:
        return settings
    return replace(settings, negative=subject_of(manifest.prompt, manifest.template) or "")


def variant_requests(
    prompt: str,
    settings: GenSettings,
    variants: int,
    image: np.ndarray | None = None,
    subject: tuple[SubjectManifest, torch.Tensor] | None = None,
) -> list[GenRequest]:
    """`variants` requests for one prompt (and still), seeds `seed`, `seed + 1`, ...: options to pick from. From the
    inversion they differ only with a variation above 0 (`VARIANTS_VARIATION` unless one is given)."""
    check_variants(variants)
    if settings.seed + variants - 1 > MAX_SEED:
        raise MemeError(f"--seed {settings.seed} leaves no room for {variants} variants: use a lower seed")
    variation = settings.variation
    if variation is None and settings.start == "inversion":
        variation = VARIANTS_VARIATION if variants > 1 else 0.0
    return [
        GenRequest(prompt, replace(settings, seed=settings.seed + i, variation=variation), image, subject)
        for i in range(variants)
    ]
