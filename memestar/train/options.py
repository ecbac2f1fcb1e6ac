"""`meme train`'s options, declared once (`options.py`), and the tuning settings they set: light, so that the CLI
reads them without torch."""

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import (
    MAX_FRAMES,
    MAX_INVERSION_STEPS,
    MAX_LR,
    MAX_SEED,
    MAX_SIZE,
    MAX_TRAIN_STEPS,
    check_choice,
    check_device,
    check_frames,
    check_int,
    check_lr,
    check_prompt,
    check_seed,
    check_size,
    check_steps,
    check_subject_name,
)
from ..device import PRECISIONS
from ..errors import MemeError
from ..models.base_source import BaseSource
from ..models.layout import (
    DEFAULT_FRAME_ATTENTION,
    DEFAULT_FRAME_POSITIONS,
    DEFAULT_GROUP_NORM,
    FRAME_ATTENTION_MODES,
    GROUP_NORM_MODES,
    TUNED,
)
from ..options import option
from ..prompts import split_subject

MOTION_LOSSES = ("mse", "debiased", "residual")
DEFAULT_MOTION_LOSS = "mse"


def parse_motion_loss(spec: str) -> dict[str, float]:
    """ "mse", "debiased", "mse=1,residual=0.5" -> {name: weight}; one line naming the problem otherwise."""
    weights = {}
    for part in (p.strip() for p in str(spec).split(",")):
        name, _, weight = part.partition("=")
        name = name.strip()
        if name not in MOTION_LOSSES:
            raise MemeError(
                f"--motion-loss {spec!r}: {name!r} is not a loss; use {', '.join(MOTION_LOSSES)}, "
                f"optionally weighted and combined, e.g. mse=1,debiased=1"
            )
        try:
            value = float(weight) if weight else 1.0
        except ValueError as e:
            raise MemeError(f"--motion-loss {spec!r}: the weight of {name} is not a number") from e
        if not (math.isfinite(value) and 0 < value <= 100) or name in weights:
            raise MemeError(f"--motion-loss {spec!r}: each loss once, with a weight above 0 and at most 100")
        weights[name] = value
    return weights


@dataclass
class TuneSettings:
    steps: int = 200
    lr: float = 3e-5
    seed: int = 0
    checkpoint_every: int = 50
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    weight_decay: float = 1e-2
    motion_loss: dict[str, float] = field(default_factory=lambda: parse_motion_loss(DEFAULT_MOTION_LOSS))
    tuned: str = "all"  # models.video_unet.TUNED: what changes (the adapter always holds every trainable tensor)


DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass
class TrainOptions(BaseSource):
    clip: Path = option(help="The clip: a video (mp4, webm, mov), GIF/WebP, or a folder of frames.", argument=True)
    prompt: str = option(
        help='What the clip shows, e.g. "running {apple-cat}" (braces mark the subject that '
        "`meme gen --subject` replaces; without them it is guessed).",
        flags=("--text", "-t"),
    )
    base: str = option(
        DEFAULT_BASE,
        "Base model: Hub id, diffusers folder, .safetensors file, tiny, or random-tiny / random-sd15.",
        kw_only=True,
    )
    out: Path | None = option(None, "Meme folder (default: memes/<prompt>).")
    frames: int = option(16, "Frames taken from the clip.", low=1, high=MAX_FRAMES)
    size: int = option(256, "Square side in pixels (a multiple of 8).", low=8, high=MAX_SIZE)
    start: int = option(0, "First frame of the clip.", low=0)
    stride: int | None = option(None, "Take every N-th frame (default: spread evenly).", low=1)
    steps: int = option(TuneSettings.steps, "Tuning steps.", low=1, high=MAX_TRAIN_STEPS)
    lr: float = option(TuneSettings.lr, "AdamW learning rate.", low=0, high=MAX_LR)
    seed: int = option(TuneSettings.seed, "Seed for timesteps and noise.", low=0, high=MAX_SEED)
    resume: bool = option(False, "Continue an interrupted run from its checkpoint.")
    force: bool = option(False, "Replace a meme or an unfinished run in the output folder.")
    checkpoint_every: int = option(
        TuneSettings.checkpoint_every,
        "Write a resumable checkpoint every N steps (0: only on Ctrl-C).",
        low=0,
        high=MAX_TRAIN_STEPS,
    )
    group_norm: str = option(DEFAULT_GROUP_NORM, "GroupNorm statistics: per-frame or frames.", choices=GROUP_NORM_MODES)
    frame_positions: bool = option(
        DEFAULT_FRAME_POSITIONS,
        "Temporal attention sees each frame's index "
        "(AnimateDiff's sinusoidal encoding), so the meme learns where the subject is "
        "when.",
        flags=("--frame-positions/--no-frame-positions",),
    )
    frame_attention: str = option(
        DEFAULT_FRAME_ATTENTION,
        "Whose keys each frame's self-attention sees: first-previous (Tune-A-Video: frames 0 and i-1) or "
        "first-previous-self (frame i's own too: no flicker between odd and even frames).",
        choices=FRAME_ATTENTION_MODES,
    )
    motion_loss: str = option(
        DEFAULT_MOTION_LOSS,
        "What tuning minimises: mse (every frame), debiased "
        "(MotionDirector: appearance shared by frames down-weighted), residual (VMC: "
        "frame-to-frame differences), or weighted together: mse=1,debiased=1.",
    )
    tune: str = option(
        TuneSettings.tuned,
        "What tuning changes: all (Tune-A-Video: the attention queries and the "
        "temporal attention) or temporal (the temporal attention alone).",
        choices=TUNED,
    )
    gradient_checkpointing: bool | None = option(
        None,
        "Recompute activations to save memory (default: on for GPUs).",
        flags=("--gradient-checkpointing/--no-gradient-checkpointing",),
    )
    inversion_steps: int = option(50, "DDIM steps of the clip's inversion.", low=1, high=MAX_INVERSION_STEPS)
    preview: bool = option(
        True,
        "Sample the prompt from the inversion into preview.gif (the server's picture of the meme; about as long as "
        "one clip).",
        flags=("--preview/--no-preview",),
    )
    preview_guidance: float = 7.5
    quiet: bool = option(False, "No progress bar or notes.", flags=("--quiet", "-q"))

    def check(self) -> None:
        """Refuses bad options before anything loads."""
        check_prompt(self.prompt, 'pass --text "what the clip shows"')
        split_subject(self.prompt)
        parse_motion_loss(self.motion_loss)
        check_frames(self.frames)
        check_size(self.size)
        check_steps(self.steps, "--steps", MAX_TRAIN_STEPS)
        check_steps(self.inversion_steps, "--inversion-steps", MAX_INVERSION_STEPS)
        check_lr(self.lr)
        check_seed(self.seed)
        check_int("--checkpoint-every", self.checkpoint_every, 0, MAX_TRAIN_STEPS)
        check_choice("--group-norm", self.group_norm, GROUP_NORM_MODES)
        check_choice("--frame-attention", self.frame_attention, FRAME_ATTENTION_MODES)
        check_choice("--tune", self.tune, TUNED)
        check_choice("--precision", self.precision, PRECISIONS)
        check_device(self.device)


@dataclass
class SubjectOptions(BaseSource):
    """`meme subject learn`'s options: a subject from 1 to 4 photos, as a token of its own (textual inversion)."""

    photos: Path = option(
        help="A photo, or a folder of 1 to 4 photos (PNG, JPEG, WebP, ...) of one subject.", argument=True
    )
    name: str = option(help="The subject's name: lowercase letters, digits and '-', e.g. my-cat.", flags=("--name",))
    base: str = option(
        DEFAULT_BASE,
        "The base the memes it will be used in are tuned on: Hub id, diffusers folder, .safetensors file, or a "
        "bundled base (emoji, tiny).",
        kw_only=True,
    )
    out: Path | None = option(None, "Subject folder (default: subjects/<name>).")
    # 300 steps at lr 5e-3: the emoji base draws a subject learned from 4 photos 0.95 right, memes of other subjects
    # 0.86 (benchmarks/results/subject-probe-2026-12-07.md)
    steps: int = option(300, "Learning steps.", low=1, high=MAX_TRAIN_STEPS)
    lr: float = option(5e-3, "AdamW learning rate of the token's embedding.", low=0, high=MAX_LR)
    seed: int = option(0, "Seed for the views, timesteps and noise.", low=0, high=MAX_SEED)
    size: int | None = option(
        None, "Side the photos are seen at (default: the base's sample size).", low=8, high=MAX_SIZE
    )
    force: bool = option(False, "Replace a subject in the output folder.")
    quiet: bool = option(False, "No progress bar.", flags=("--quiet", "-q"))

    def check(self) -> None:
        check_subject_name(self.name)
        check_steps(self.steps, "--steps", MAX_TRAIN_STEPS)
        check_lr(self.lr)
        check_seed(self.seed)
        if self.size is not None:
            check_size(self.size)
        check_choice("--precision", self.precision, PRECISIONS)
        check_device(self.device)
