"""`meme demo`: the whole loop on a bundled base, on a CPU, in under two minutes.

On the emoji base (the default) it tunes two memes, the original design's results rows ("a cat face popping",
"a green apple running"), and makes each motion with four new subjects; on the shapes world (`--world shapes`) one,
"a red circle bouncing". It writes their GIFs and a contact sheet (a row of frames per clip, its prompt under it) to
`demo/`, and prints the measured scores.
"""

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..files import atomic_path, slug
from ..media.writers import write_gif
from ..runtime import GenRequest, GenSettings, Meme
from .evaluate import mean_scores, metrics, score_clip, tune_on_world_clip
from .options import DEMO_OUT, DEMO_STEPS, WORLD_LR, DemoOptions
from .worlds import WORLDS

# the motions the demo tunes on, one meme each: the emoji world's are the original design's two results rows
DEMO_MOTIONS = {"shapes": ("bouncing",), "emoji": ("popping", "running")}
# The default path (GenSettings) at the tiny world's guidance, 5
DEMO_GUIDANCE = 5.0


def contact_sheet(rows: list[tuple[str, np.ndarray]], every: int = 2, scale: int = 2) -> Image.Image:
    """One row per clip: every `every`-th frame, enlarged `scale` times, with the caption under it."""
    first = rows[0][1]
    side = first.shape[1] * scale
    per_row = len(range(0, len(first), every))
    caption_h = 16
    sheet = Image.new("RGB", (per_row * side, len(rows) * (side + caption_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for r, (caption, frames) in enumerate(rows):
        top = r * (side + caption_h)
        for c, frame in enumerate(frames[::every]):
            sheet.paste(Image.fromarray(frame).resize((side, side), Image.Resampling.NEAREST), (c * side, top))
        draw.text((4, top + side + 2), caption, fill=(0, 0, 0))
    return sheet


def run_demo(
    out: Path = DEMO_OUT,
    steps: int | None = None,
    lr: float = WORLD_LR,
    subjects: int = 4,
    quiet: bool = False,
    log=print,
    world_name: str = DemoOptions.world,
) -> dict:
    """One meme per demo motion of the world, tuned on the planned source, then its new subjects; every clip scored."""
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    world = WORLDS[world_name]
    steps = steps or DEMO_STEPS[world.name]
    rows, sheet_rows, sources, tune_seconds = [], [], [], []
    for motion in DEMO_MOTIONS[world.name]:
        source_subject, targets = world.plan[motion]
        log(f"tuning the bundled {world.base} model on {world.caption(source_subject, motion)!r} ({steps} steps) ...")
        meme_dir = out / ("meme" if len(DEMO_MOTIONS[world.name]) == 1 else f"meme-{motion}")
        summary, prompt, source, track = tune_on_world_clip(
            motion, source_subject, out, meme_dir, steps, lr, quiet=quiet, world=world
        )
        sources.append(prompt)
        tune_seconds.append(summary["seconds"])
        sheet_rows.append((f"source: {prompt}", source))
        chosen = targets[:subjects]
        settings = GenSettings(guidance=DEMO_GUIDANCE)
        clips = Meme.load(meme_dir).generate_batch([GenRequest(world.caption(s, motion), settings) for s in chosen])
        for subject, g in zip(chosen, clips):
            path = write_gif(g.frames, out / f"{slug(g.prompt)}.gif", fps=8)
            scores = score_clip(g.frames, subject, source_subject, track, world)
            rows.append(
                {"prompt": g.prompt, "gif": str(path), "seconds": round(g.seconds["total"] / g.batch_size, 3), **scores}
            )
            sheet_rows.append((g.prompt, g.frames))
    with atomic_path(out / "contact-sheet.png") as tmp:
        contact_sheet(sheet_rows).save(tmp, format="PNG")
    return {
        "world": world.name,
        "base": world.base,
        "sources": sources,
        "tune_seconds": tune_seconds,  # per source: train's seconds by stage
        "results": rows,
        "mean": mean_scores(rows, metrics(world)),
        "contact_sheet": str(out / "contact-sheet.png"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def format_table(result: dict) -> str:
    shown = metrics(WORLDS[result["world"]])
    header = "| prompt | " + " | ".join(m.replace("_", " ") for m in shown) + " | gen s |"
    lines = [header, "|" + "---|" * (len(shown) + 2)]
    seconds = sum(r["seconds"] for r in result["results"]) / len(result["results"])
    for r in result["results"] + [{"prompt": "**mean**", **result["mean"], "seconds": seconds}]:
        lines.append(f"| {r['prompt']} | " + " | ".join(f"{r[m]:.2f}" for m in shown) + f" | {r['seconds']:.2f} |")
    return "\n".join(lines)
