"""`meme eval`: motion transfer on the bundled tiny model, measured rather than eyeballed.

For each motion: render one clip of a source subject, tune on it (`meme train`'s code), then generate
new subjects never seen in motion and read every frame back with the recogniser:
- colour / shape right: the share of frames showing the asked colour / shape;
- source absent: the share of frames that do not show the source subject;
- trajectory: per frame centroid (x, y) and size against the source clip's: the mean Pearson correlation
  over the quantities that move in the source, and the mean distance in pixels.
Compares starting from the stored inversion against fresh noise, GroupNorm spanning frames against per
frame (each needs its own tuning run), and the tuned meme against an untuned one (the inflated base with
its temporal output at zero, inverted and sampled the same way: what tuning itself adds).
"""

import datetime
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checks import MAX_TRAIN_STEPS, check_int, check_lr, check_steps
from ..errors import MemeError
from ..files import slug
from ..media.writers import write_gif
from ..models.video_unet import GROUP_NORM_MODES
from ..runtime import Meme
from ..runtime.meme import STARTS
from ..train.meme import TrainOptions, train_meme
from .recognise import read_clip_frames
from .world import Sprite, clip_caption, render_clip

# (source subject, new subjects) per motion: new colour, new shape, and both.
PLAN = {
    "bouncing": (("red", "circle"), [("blue", "circle"), ("red", "square"), ("green", "triangle"), ("yellow", "star")]),
    "sliding": (("blue", "square"), [("red", "square"), ("blue", "star"), ("yellow", "circle"), ("purple", "triangle")]),
    "growing": (("green", "triangle"), [("orange", "triangle"), ("green", "circle"), ("blue", "square"),
                                        ("red", "star")]),
    "spinning": (("purple", "star"), [("green", "star"), ("purple", "square"), ("red", "triangle"),
                                      ("blue", "circle")]),
    "popping": (("orange", "star"), [("blue", "star"), ("orange", "circle"), ("purple", "square"),
                                     ("green", "triangle")]),
}


@dataclass
class EvalOptions:
    motions: tuple[str, ...] = ("bouncing", "sliding", "growing")
    subjects: int = 4
    steps: int = 150
    lr: float = 3e-3
    gen_steps: int = 25
    guidance: float = 5.0
    starts: tuple[str, ...] = ("inversion", "noise")
    group_norms: tuple[str, ...] = ("frames", "per-frame")
    untuned: bool = True  # also score an untuned meme (default GroupNorm, started from its own inversion)
    base: str = "tiny"
    seed: int = 0
    quiet: bool = True
    keep: Path | None = None  # where to keep memes and GIFs (default: a temporary folder)

    def check(self) -> None:
        for name, chosen, allowed in (("--motions", self.motions, tuple(PLAN)), ("--starts", self.starts, STARTS),
                                      ("--group-norms", self.group_norms, GROUP_NORM_MODES)):
            if not chosen or set(chosen) - set(allowed):
                raise MemeError(f"{name} must name some of {', '.join(allowed)}")
        check_int("--subjects", self.subjects, 1, min(len(t) for _, t in PLAN.values()))
        check_steps(self.steps, "--steps", MAX_TRAIN_STEPS)
        check_lr(self.lr)


UNTUNED_GROUP_NORM = "per-frame"  # the default; with the temporal output at zero only GroupNorm differs


def trajectory(readings) -> np.ndarray:
    """f x 3: centroid x, y and size per frame (NaN where nothing was found)."""
    return np.array([[r.x, r.y, r.size] for r in readings], dtype=float)


def trajectory_scores(source: np.ndarray, generated: np.ndarray) -> tuple[float, float]:
    """Mean correlation over the quantities that move in the source (std > 1 px), and mean distance (px)."""
    found = ~np.isnan(generated).any(axis=1)
    if found.sum() < 3:
        return 0.0, float("nan")
    s, g = source[found], generated[found]
    correlations = []
    for k in range(3):
        if s[:, k].std() > 1.0:
            correlations.append(0.0 if g[:, k].std() < 1e-6 else float(np.corrcoef(s[:, k], g[:, k])[0, 1]))
    distance = float(np.mean(np.sqrt(((s[:, :2] - g[:, :2]) ** 2).sum(axis=1)) + np.abs(s[:, 2] - g[:, 2])))
    return float(np.mean(correlations)) if correlations else 1.0, distance


def score_clip(frames: np.ndarray, colour: str, shape: str, source: tuple[str, str], source_track: np.ndarray) -> dict:
    readings = read_clip_frames(frames)
    correlation, distance = trajectory_scores(source_track, trajectory(readings))
    return {
        "colour_right": float(np.mean([r.colour == colour for r in readings])),
        "shape_right": float(np.mean([r.shape == shape for r in readings])),
        "source_absent": float(np.mean([(r.colour, r.shape) != source for r in readings])),
        "trajectory_correlation": correlation,
        "trajectory_distance_px": distance,
    }


METRICS = ("colour_right", "shape_right", "source_absent", "trajectory_correlation", "trajectory_distance_px")


def mean_scores(rows: list[dict]) -> dict:
    return {m: float(np.nanmean([r[m] for r in rows])) for m in METRICS}


def tune_on_world_clip(motion: str, subject: tuple[str, str], folder: Path, meme_dir: Path, steps: int, lr: float,
                       group_norm: str = "per-frame", base: str = "tiny", seed: int = 0, inversion_steps: int = 25,
                       quiet: bool = True):
    """Renders the subject's clip of `motion` into `folder` and tunes a meme on it into `meme_dir` (`meme
    train`'s code). Returns train's summary, the clip's caption, its frames and its trajectory as read back."""
    source = Sprite(*subject)
    frames = render_clip(source, motion)
    prompt = clip_caption(source, motion)
    clip = write_gif(frames, folder / f"{slug(prompt)}.gif", fps=8)
    summary = train_meme(TrainOptions(clip=clip, prompt=prompt, base=base, out=meme_dir, frames=len(frames),
                                      size=frames.shape[1], steps=steps, lr=lr, seed=seed, group_norm=group_norm,
                                      inversion_steps=inversion_steps, force=True, quiet=quiet, checkpoint_every=0))
    return summary, prompt, frames, trajectory(read_clip_frames(frames))


def evaluate(o: EvalOptions, log=print) -> dict:
    """Tunes one meme per (motion, GroupNorm mode) and scores every (subject, start); returns the report."""
    o.check()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = o.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        runs = [(m, g, True) for m, g in itertools.product(o.motions, o.group_norms)]
        runs += [(m, UNTUNED_GROUP_NORM, False) for m in o.motions] if o.untuned else []
        for motion, group_norm, tuned in runs:
            (colour, shape), targets = PLAN[motion]
            label = f"group norm {group_norm}" if tuned else "untuned"
            log(f"{'tuning' if tuned else 'inverting'} {clip_caption(Sprite(colour, shape), motion)!r} ({label}) ...")
            meme_dir = root / f"{motion}-{group_norm if tuned else 'untuned'}"
            steps, lr = (o.steps, o.lr) if tuned else (1, 0.0)  # one step at lr 0: the untuned weights, saved
            _, _, _, source_track = tune_on_world_clip(motion, (colour, shape), root, meme_dir, steps, lr,
                                                       group_norm, o.base, o.seed, o.gen_steps, o.quiet)
            meme = Meme.load(meme_dir)
            variant = group_norm if tuned else "untuned"
            for (c, s), start in itertools.product(targets[:o.subjects], o.starts if tuned else ("inversion",)):
                target = clip_caption(Sprite(c, s), motion)
                g = meme.generate(target, seed=o.seed, steps=o.gen_steps, guidance=o.guidance, start=start)
                if o.keep:
                    write_gif(g.frames, root / f"{motion}-{variant}-{start}-{c}-{s}.gif", fps=8)
                rows.append({"motion": motion, "group_norm": variant, "start": start, "prompt": target,
                             **score_clip(g.frames, c, s, (colour, shape), source_track)})
    return report(o, rows)


def report(o: EvalOptions, rows: list[dict]) -> dict:
    variants = {}
    pairs = list(itertools.product(o.group_norms, o.starts)) + ([("untuned", "inversion")] if o.untuned else [])
    for group_norm, start in pairs:
        chosen = [r for r in rows if r["group_norm"] == group_norm and r["start"] == start]
        variants[f"{group_norm}/{start}"] = {"overall": mean_scores(chosen),
                                            "motions": {m: mean_scores([r for r in chosen if r["motion"] == m])
                                                        for m in o.motions}}
    tuned = [v for v in variants if not v.startswith("untuned/")]
    best = max(tuned, key=lambda v: _quality(variants[v]["overall"]))
    return {"benchmark": "meme eval", "date": datetime.date.today().isoformat(), "base": o.base,
            "settings": {k: v for k, v in vars(o).items() if k not in ("keep", "quiet")},
            "variants": variants, "best": best, "rows": rows}


def _quality(scores: dict) -> float:
    """One number to rank variants: subject right and motion kept, equally."""
    return (scores["colour_right"] + scores["shape_right"]) / 2 + scores["trajectory_correlation"]


def markdown(r: dict) -> str:
    lines = [f"# meme eval: motion transfer on the `{r['base']}` base", "",
             f"Date: {r['date']}. Settings: {r['settings']}.", "",
             "| GroupNorm / start | motion | colour right | shape right | source absent | trajectory corr | "
             "trajectory dist px |", "|---|---|---|---|---|---|---|"]
    for variant, v in r["variants"].items():
        for motion, m in [*v["motions"].items(), ("**overall**", v["overall"])]:
            lines.append(f"| {variant} | {motion} | {m['colour_right']:.2f} | {m['shape_right']:.2f} | "
                         f"{m['source_absent']:.2f} | {m['trajectory_correlation']:.2f} | "
                         f"{m['trajectory_distance_px']:.1f} |")
    lines += ["", f"Best: {r['best']}."]
    return "\n".join(lines) + "\n"
