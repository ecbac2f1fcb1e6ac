"""`meme eval`: motion transfer on the bundled tiny model, measured rather than eyeballed.

For each motion: render one clip of a source subject, tune on it (`meme train`'s code) once per tuning loss, then
generate new subjects never seen in motion and read every frame back with the recogniser:
- colour / shape right: the share of frames showing the asked colour / shape;
- source absent: the share of frames that do not show the source subject;
- trajectory: per frame centroid (x, y) and size against the source clip's: the mean Pearson correlation
  over the quantities that move in the source, and the mean distance in pixels;
- variety: the mean pixel difference between the clips of different seeds (0: every seed gives the same clip).
Compares the tuning losses (`train/losses.py`), the starts (the stored inversion, its coarse layout with fresh
detail, a mix of it with fresh noise, fresh noise) and, optionally, samplers and step counts (with the seconds each
clip took) and guidance scales, with and without following the source's subject track (`sampling/follow.py`, measured
on the latents or on decoded frames), the loop's work savers (guidance only on the early steps, deep features
reused between steps), against an untuned meme (the inflated base with its temporal output at zero, inverted and
sampled the same way: what tuning itself adds).
"""

import datetime
import itertools
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import slug
from ..media.writers import write_gif
from ..models.layout import DEFAULT_FRAME_ATTENTION, DEFAULT_FRAME_POSITIONS, DEFAULT_GROUP_NORM
from ..runtime import Meme
from ..runtime.settings import GenRequest, GenSettings
from ..train.command import TrainOptions, train_meme
from ..train.options import DEFAULT_MOTION_LOSS, TuneSettings
from .options import EvalOptions
from .worlds import WORLDS, Subject, World

UNTUNED = "untuned"  # the tuning label of the untuned reference


def trajectory(readings) -> np.ndarray:
    """f x 3: centroid x, y and size per frame (NaN where nothing was found)."""
    return np.array([[r.x, r.y, r.size] for r in readings], dtype=float)


def trajectory_scores(source: np.ndarray, generated: np.ndarray) -> tuple[float, float]:
    """Mean correlation over the quantities that move in the source (std > 1 px; NaN when none does), and mean
    distance (px)."""
    found = ~np.isnan(generated).any(axis=1)
    if found.sum() < 3:
        return 0.0, float("nan")
    s, g = source[found], generated[found]
    correlations = []
    for k in range(3):
        if s[:, k].std() > 1.0:
            correlations.append(0.0 if g[:, k].std() < 1e-6 else float(np.corrcoef(s[:, k], g[:, k])[0, 1]))
    distance = float(np.mean(np.sqrt(((s[:, :2] - g[:, :2]) ** 2).sum(axis=1)) + np.abs(s[:, 2] - g[:, 2])))
    # Nothing moves in the source (spinning turns in place; the recogniser reads no angle): no correlation to take.
    return float(np.mean(correlations)) if correlations else float("nan"), distance


def score_clip(
    frames: np.ndarray, subject: Subject, source: Subject, source_track: np.ndarray, world: World = WORLDS["shapes"]
) -> dict:
    """Each part of the subject right (share of frames), the source absent, the trajectory against the source's."""
    readings = world.read_frames(frames)
    correlation, distance = trajectory_scores(source_track, trajectory(readings))
    right = {
        metric: float(np.mean([r.subject is not None and r.subject[i] == subject[i] for r in readings]))
        for i, metric in enumerate(world.right_metrics)
    }
    return right | {
        "source_absent": float(np.mean([r.subject != tuple(source) for r in readings])),
        "trajectory_correlation": correlation,
        "trajectory_distance_px": distance,
    }


def metrics(world: World) -> tuple[str, ...]:
    """A clip's scores in `world`, in the order tables show them."""
    return (*world.right_metrics, "source_absent", "trajectory_correlation", "trajectory_distance_px")


def eval_metrics(world: World) -> tuple[str, ...]:
    return (*metrics(world), "variety", "seconds")


def mean_scores(rows: list[dict], metrics: tuple[str, ...]) -> dict:
    """Means that skip NaN (a clip where nothing was found, a motion without a trajectory); NaN when all are."""
    kept = {m: [r[m] for r in rows if not np.isnan(r[m])] for m in metrics}
    return {m: float(np.mean(v)) if v else float("nan") for m, v in kept.items()}


def write_world_clip(frames: np.ndarray, folder: Path, prompt: str) -> Path:
    """The clip as a GIF to look at and as a folder of PNG frames to tune from (returned): PNG keeps the rendered
    pixels exactly, where the GIF's palette rounds them."""
    write_gif(frames, folder / f"{slug(prompt)}.gif", fps=8)
    clip = folder / f"{slug(prompt)}-frames"
    clip.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(clip / f"{i:04d}.png")
    return clip


def tune_on_world_clip(
    motion: str,
    subject: Subject,
    folder: Path,
    meme_dir: Path,
    steps: int,
    lr: float,
    group_norm: str = DEFAULT_GROUP_NORM,
    base: str | None = None,
    seed: int = 0,
    inversion_steps: int = 25,
    quiet: bool = True,
    motion_loss: str = DEFAULT_MOTION_LOSS,
    tune: str = TuneSettings.tuned,
    frame_positions: bool = DEFAULT_FRAME_POSITIONS,
    world: World = WORLDS["shapes"],
    preview: bool = False,
    frame_attention: str = DEFAULT_FRAME_ATTENTION,
):
    """Renders the subject's clip of `motion` in `world` into `folder` and tunes a meme on it into `meme_dir` (`meme
    train`'s code; `base` defaults to the world's; no preview.gif unless `preview`: the eval and the demo never show
    it). Returns train's summary, the clip's caption, its frames and its trajectory as read back."""
    frames = world.clip(subject, motion)
    prompt = world.caption(subject, motion)
    clip = write_world_clip(frames, folder, prompt)
    summary = train_meme(
        TrainOptions(
            clip=clip,
            prompt=prompt,
            base=base or world.base,
            out=meme_dir,
            frames=len(frames),
            size=frames.shape[1],
            steps=steps,
            lr=lr,
            seed=seed,
            group_norm=group_norm,
            motion_loss=motion_loss,
            tune=tune,
            frame_positions=frame_positions,
            frame_attention=frame_attention,
            inversion_steps=inversion_steps,
            preview=preview,
            force=True,
            quiet=quiet,
            checkpoint_every=0,
        )
    )
    return summary, prompt, frames, trajectory(world.read_frames(frames))


def pixel_difference(clips: list[np.ndarray]) -> float:
    """Mean absolute pixel difference (0-255) over every pair of clips."""
    pairs = list(itertools.combinations(clips, 2))
    return float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in pairs])) if pairs else 0.0


# The generation settings each row of the report names (with the tuning), in order.
AXES = ("start", "sampler", "steps", "follow", "follow_measure", "guidance", "guidance_until", "cache_interval")


def eval_requests(o: EvalOptions, motion: str, world: World) -> list[dict]:
    """What to generate from each meme of `motion`: every (subject, start, sampler, steps, follow and its measure,
    guidance and its last guided share, cache interval, seed); from the inversion alone every seed gives the same
    clip, so it runs once. Without following, the measure has nothing to change: it runs once."""
    out = []
    for subject, start, sampler, steps, follows, measure, guidance, until, interval in itertools.product(
        world.plan[motion][1][: o.subjects],
        o.starts,
        o.samplers,
        o.gen_steps,
        o.follows,
        o.follow_measures,
        o.guidances,
        o.guidance_untils,
        o.cache_intervals,
    ):
        if not follows and measure != o.follow_measures[0]:
            continue
        for seed in range(o.seed, o.seed + (1 if start == "inversion" else o.seeds)):
            settings = GenSettings(
                seed=seed,
                steps=steps,
                guidance=guidance,
                sampler=sampler,
                start=start,
                variation={"mix": o.mix, "layout": o.layout}.get(start),
                follow="on" if follows else "off",
                follow_measure=measure,
                guidance_until=until,
                cache_interval=interval,
            )
            out.append(
                {
                    "subject": subject,
                    "seed": seed,
                    **{a: getattr(settings, a) for a in AXES},
                    "request": GenRequest(world.caption(subject, motion), settings),
                }
            )
    return out


def evaluate(o: EvalOptions, log=print) -> dict:
    """Tunes one meme per (motion, loss), plus the untuned reference, and scores every generation; the report."""
    o = o.check()
    world = WORLDS[o.world]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = o.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        runs = list(itertools.product(o.losses, o.tunes, o.positions, o.attentions))
        # untuned, the temporal attention adds nothing, with or without frame positions; the spatial one does
        untuned = [(UNTUNED, "all", DEFAULT_FRAME_POSITIONS, a) for a in o.attentions] if o.untuned else []
        for motion in o.motions:
            source = world.plan[motion][0]
            for loss, tune, positions, attention in runs + untuned:
                tuned = loss != UNTUNED
                tuning = loss if tune == "all" else f"{loss}, {tune} only"
                if tuned and positions != DEFAULT_FRAME_POSITIONS:
                    tuning += ", frame positions" if positions else ", no frame positions"
                if attention != DEFAULT_FRAME_ATTENTION:
                    tuning += f", {attention}"
                log(
                    f"{'tuning' if tuned else 'inverting'} {world.caption(source, motion)!r} "
                    f"({'loss ' + tuning if tuned else 'untuned'}) ..."
                )
                meme_dir = root / f"{motion}-{slug(tuning)}"
                steps, lr = (o.steps, o.lr) if tuned else (1, 0.0)  # one step at lr 0: the untuned weights, saved
                _, _, _, source_track = tune_on_world_clip(
                    motion,
                    source,
                    root,
                    meme_dir,
                    steps,
                    lr,
                    o.group_norm,
                    o.base,
                    o.seed,
                    o.inversion_steps,
                    o.quiet,
                    loss if tuned else DEFAULT_MOTION_LOSS,
                    tune,
                    positions,
                    world,
                    frame_attention=attention,
                )
                rows += score_meme(o, world, Meme.load(meme_dir), motion, tuning, source, source_track, root)
    return report(o, rows)


def score_meme(
    o: EvalOptions,
    world: World,
    meme: Meme,
    motion: str,
    tuning: str,
    source: Subject,
    source_track: np.ndarray,
    root: Path,
) -> list[dict]:
    wanted = eval_requests(o, motion, world)
    generations = meme.generate_batch([w["request"] for w in wanted])
    clips: dict[tuple, list[np.ndarray]] = {}
    rows = []
    for w, g in zip(wanted, generations):
        group = (*w["subject"], *(w[a] for a in AXES))
        clips.setdefault(group, []).append(g.frames)
        if o.keep:
            write_gif(g.frames, root / f"{motion}-{slug(tuning)}-{'-'.join(map(str, group))}-{w['seed']}.gif", fps=8)
        rows.append(
            {
                "motion": motion,
                "tuning": tuning,
                **{a: w[a] for a in AXES},
                "prompt": g.prompt,
                "seed": w["seed"],
                "group": group,
                "seconds": g.seconds["total"] / g.batch_size,
                **score_clip(g.frames, w["subject"], source, source_track, world),
            }
        )
    for row in rows:
        row["variety"] = pixel_difference(clips[row.pop("group")])
    return rows


def variant_name(row: dict) -> str:
    follow = f"follow {row['follow']}" + (f" ({row['follow_measure']})" if row["follow"] == "on" else "")
    guidance = f"guidance {row['guidance']:g}" + (f" until {row['guidance_until']:g}" if row["guidance_until"] else "")
    cache = f" / cache {row['cache_interval']}" if row["cache_interval"] > 1 else ""
    return f"{row['tuning']} / {row['start']} / {row['sampler']} {row['steps']} / {follow} / {guidance}{cache}"


def report(o: EvalOptions, rows: list[dict]) -> dict:
    variants, measured = {}, eval_metrics(WORLDS[o.world])
    for name in dict.fromkeys(variant_name(r) for r in rows):
        chosen = [r for r in rows if variant_name(r) == name]
        variants[name] = {
            "overall": mean_scores(chosen, measured),
            "motions": {m: mean_scores([r for r in chosen if r["motion"] == m], measured) for m in o.motions},
        }
    tuned = [v for v in variants if not v.startswith(UNTUNED)]
    best = max(tuned, key=lambda v: quality(variants[v]["overall"]))
    return {
        "benchmark": "meme eval",
        "date": datetime.date.today().isoformat(),
        "world": o.world,
        "base": o.base,
        "settings": {k: v for k, v in vars(o).items() if k not in ("keep", "quiet")},
        "variants": variants,
        "best": best,
        "rows": rows,
    }


def json_safe(value):
    """The report with each NaN (a score that could not be taken) as null, for strict JSON."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return None if isinstance(value, float) and np.isnan(value) else value


def quality(scores: dict) -> float:
    """One number to rank variants: subject right (each part's share, averaged) and motion kept, equally (by subject
    alone where no motion has a trajectory: spinning alone)."""
    trajectory = scores["trajectory_correlation"]
    right = np.mean([v for k, v in scores.items() if k.endswith("_right")])
    return float(right) + (0.0 if np.isnan(trajectory) else trajectory)


def markdown(r: dict) -> str:
    world = WORLDS[r["world"]]
    motions = list(next(iter(r["variants"].values()))["motions"])
    right = [(m, m.replace("_", " ")) for m in world.right_metrics]
    lines = [
        f"# meme eval: motion transfer in the {world.name} world, on the `{r['base']}` base",
        "",
        f"Date: {r['date']}. Settings: {r['settings']}.",
        "",
        "Tuning / start / sampler steps / following the subject track (measured on) / guidance (until the "
        "timestep share where it stops) / deep-cache interval, over every motion and subject "
        "(seconds: sampling and decoding one clip in batches of up to 8; variety: mean pixel difference between "
        "seeds):",
        "",
        "| variant | " + " | ".join(title for _, title in right) + " | source absent | trajectory corr | "
        "trajectory dist px | variety | s per clip |",
        "|---|" + "---|" * (len(right) + 5),
    ]
    for name, v in r["variants"].items():
        m = v["overall"]
        lines.append(
            f"| {name} | " + " | ".join(f"{m[k]:.2f}" for k, _ in right) + f" | {m['source_absent']:.2f} | "
            f"{m['trajectory_correlation']:.2f} | {m['trajectory_distance_px']:.1f} | {m['variety']:.1f} | "
            f"{m['seconds']:.2f} |"
        )
    for metric, title in [("trajectory_correlation", "Trajectory correlation")] + right[::-1]:
        lines += [
            "",
            f"{title[0].upper() + title[1:]} by motion:",
            "",
            "| variant | " + " | ".join(motions) + " |",
            "|---|" + "---|" * len(motions),
        ]
        for name, v in r["variants"].items():
            lines.append(f"| {name} | " + " | ".join(f"{v['motions'][m][metric]:.2f}" for m in motions) + " |")
    lines += ["", f"Best (subject and motion, equally): {r['best']}."]
    return "\n".join(lines) + "\n"
