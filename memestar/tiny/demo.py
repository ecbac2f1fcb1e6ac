"""`meme demo`: the whole loop on the bundled tiny model, on a CPU, in about a minute.

Tunes the tiny base on one clip ("a red circle bouncing"), makes the same motion with new subjects,
writes their GIFs and a contact sheet (a row of frames per clip, its prompt under it) to `demo/`, and
prints the measured scores.
"""

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..files import atomic_path, slug
from ..media.writers import write_gif
from ..runtime import GenRequest, GenSettings, Meme
from .evaluate import METRICS, mean_scores, score_clip, tune_on_world_clip
from .options import DEMO_OUT, DEMO_STEPS, PLAN, WORLD_LR
from .world import Sprite, clip_caption

DEMO_MOTION = "bouncing"
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
    steps: int = DEMO_STEPS,
    lr: float = WORLD_LR,
    subjects: int = 4,
    quiet: bool = False,
    log=print,
) -> dict:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (colour, shape), targets = PLAN[DEMO_MOTION]
    log(f"tuning the bundled tiny model on {clip_caption(Sprite(colour, shape), DEMO_MOTION)!r} ({steps} steps) ...")
    summary, prompt, source, track = tune_on_world_clip(
        DEMO_MOTION, (colour, shape), out, out / "meme", steps, lr, quiet=quiet
    )
    meme = Meme.load(out / "meme")
    rows, sheet_rows = [], [(f"source: {prompt}", source)]
    chosen = targets[:subjects]
    settings = GenSettings(guidance=DEMO_GUIDANCE)
    clips = meme.generate_batch([GenRequest(clip_caption(Sprite(c, s), DEMO_MOTION), settings) for c, s in chosen])
    for (c, s), g in zip(chosen, clips):
        path = write_gif(g.frames, out / f"{slug(g.prompt)}.gif", fps=8)
        scores = score_clip(g.frames, c, s, (colour, shape), track)
        rows.append(
            {"prompt": g.prompt, "gif": str(path), "seconds": round(g.seconds["total"] / g.batch_size, 3), **scores}
        )
        sheet_rows.append((g.prompt, g.frames))
    with atomic_path(out / "contact-sheet.png") as tmp:
        contact_sheet(sheet_rows).save(tmp, format="PNG")
    return {
        "source": prompt,
        "tune_seconds": summary["seconds"],
        "results": rows,
        "mean": mean_scores(rows),
        "contact_sheet": str(out / "contact-sheet.png"),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def format_table(result: dict) -> str:
    header = "| prompt | " + " | ".join(m.replace("_", " ") for m in METRICS) + " | gen s |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]
    for r in result["results"] + [{"prompt": "**mean**", **result["mean"], "seconds": float("nan")}]:
        lines.append(f"| {r['prompt']} | " + " | ".join(f"{r[m]:.2f}" for m in METRICS) + f" | {r['seconds']:.2f} |")
    return "\n".join(lines)
