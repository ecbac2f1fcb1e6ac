"""Animating a still with a meme (issue 33, `meme gen --image`), measured through `Meme.generate(image=...)` as a
user calls it, on the emoji world: does the photo's subject stay the photo's, move as the meme's source moved, and
keep the source's subject out, at which strength, and at what cost?

Needs `make demo` first (its memes and source frames in demo/). The "photos" are emoji renders no tuning clip shows,
in three forms: cut out (the render with its alpha, a sticker), on a plain background (saved as JPEG: the matte cuts
it out) and on a busy background (no plain border: placed whole). Prompts: none (the product's default: the meme's
action alone, its source subject as the negative prompt) or the emoji named ("a koala popping").

    python benchmarks/animated_still.py --demo demo --strengths 0.1,0.2,0.3,0.5
"""

import argparse
import io
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from memestar.runtime import Meme
from memestar.runtime.settings import STILL_STRENGTH
from memestar.runtime.still import read_still
from memestar.tiny.emoji_world import atlas
from memestar.tiny.evaluate import trajectory, trajectory_scores
from memestar.tiny.worlds import WORLDS

WORLD = WORLDS["emoji"]
SOURCES = {"popping": "a-cat-face-popping", "running": "a-green-apple-running"}
PHOTOS = {  # never a tuning clip's subject, nor a new subject of this motion in the plan
    "popping": ("bear face", "fox face", "koala", "tiger face"),
    "running": ("peach", "doughnut", "frog face", "cherries"),
}
FORMS = ("cut out", "plain background", "busy background")


def photo(name: str, form: str) -> np.ndarray:
    """The emoji render as a user's photo in `form`, read back as `meme gen --image` reads a file: RGBA."""
    render = atlas()[name].convert("RGBA")
    if form == "cut out":
        return np.asarray(render)
    side = render.width * 2
    if form == "plain background":
        canvas = Image.new("RGB", (side, side), (246, 243, 236))
    else:  # a smooth gradient in both directions with noise: no plain border
        rng = np.random.default_rng(0)
        yy, xx = np.mgrid[:side, :side] / side
        busy = np.stack([200 * xx + 30, 160 * yy + 60, 120 * (1 - xx) + 80], -1) + rng.normal(0, 12, (side, side, 3))
        canvas = Image.fromarray(busy.clip(0, 255).astype(np.uint8))
    canvas.paste(render, (side // 4, side // 4), render)
    data = io.BytesIO()
    canvas.save(data, format="JPEG", quality=90)
    return read_still(Path(f"{name}.jpg"), data.getvalue())


def score(frames: np.ndarray, name: str, source: str, source_track: np.ndarray) -> tuple[float, float, float]:
    readings = WORLD.read_frames(frames)
    reads = [r.subject[0] if r.subject else None for r in readings]
    correlation, _ = trajectory_scores(source_track, trajectory(readings))
    return float(np.mean([r == name for r in reads])), float(np.mean([r != source for r in reads])), correlation


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    p.add_argument("--strengths", default="0.1,0.2,0.3,0.5")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results") / f"animated-still-{date.today()}")
    a = p.parse_args()
    runs = [("cut out", "none", float(s)) for s in a.strengths.split(",")]
    runs += [("cut out", "named", STILL_STRENGTH), ("cut out", "named", 0.5)]
    runs += [(form, "none", STILL_STRENGTH) for form in FORMS[1:]]
    rows = []
    for motion, source_clip in SOURCES.items():
        frames = sorted((a.demo / f"{source_clip}-frames").glob("*.png"))
        source_frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
        source_track = trajectory(WORLD.read_frames(source_frames))
        source = WORLD.plan[motion][0][0]
        meme = Meme.load(a.demo / f"meme-{motion}")
        meme.generate(image=photo(PHOTOS[motion][0], "cut out"))  # warm: the first clip pays for the allocator
        for form, prompt_kind, strength in runs:
            scores, seconds = [], []
            for name in PHOTOS[motion]:
                image = photo(name, form)
                prompt = f"a {name} {motion}" if prompt_kind == "named" else None
                t = time.perf_counter()
                g = meme.generate(prompt, image=image, strength=strength)
                seconds.append(time.perf_counter() - t)
                scores.append(score(g.frames, name, source, source_track))
            right, absent, correlation = np.mean(scores, axis=0)
            row = dict(
                motion=motion,
                photo=form,
                prompt=prompt_kind,
                strength=strength,
                photo_right=round(float(right), 3),
                source_absent=round(float(absent), 3),
                trajectory_correlation=round(float(correlation), 3),
                seconds_per_clip=round(float(np.mean(seconds)), 2),
            )
            rows.append(row)
            print(row, flush=True)
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "| motion | photo | prompt | strength | photo's emoji read | source absent | trajectory corr | s/clip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['motion']} | {r['photo']} | {r['prompt']} | {r['strength']:g} | {r['photo_right']:.2f} "
            f"| {r['source_absent']:.2f} | {r['trajectory_correlation']:.2f} | {r['seconds_per_clip']:.2f} |"
        )
    a.out.with_suffix(".table.md").write_text("\n".join(lines) + "\n")  # pasted into the dated .md with its reading


if __name__ == "__main__":
    main()
