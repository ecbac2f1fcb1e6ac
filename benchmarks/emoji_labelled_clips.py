"""The clips behind `tests/data/emoji-labelled/`: each `make demo` meme makes every emoji of the world, and the frames
that labels.json lists are written as one grid per motion (a row per emoji). The labels themselves were given by eye
(benchmarks/results/emoji-reader-2026-12-07.md). The labelled frames came from the memes of `meme demo --steps 100`
(the demo tunes 70 by default); the demo's tuning is deterministic on one machine, so on those memes this script
makes the committed grids bit for bit (checked 2026-12-07 on the sessions' CPU).

    meme demo --steps 100 --out /tmp/demo100 && python benchmarks/emoji_labelled_clips.py --demo /tmp/demo100 --out OUT
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from memestar.runtime import GenRequest, GenSettings, Meme
from memestar.tiny.emoji_world import EMOJI
from memestar.tiny.worlds import WORLDS

LABELS = Path(__file__).resolve().parents[1] / "tests" / "data" / "emoji-labelled" / "labels.json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args()
    frames = json.loads(LABELS.read_text())["frames"]
    a.out.mkdir(parents=True, exist_ok=True)
    world = WORLDS["emoji"]
    for motion in ("popping", "running"):
        meme = Meme.load(a.demo / f"meme-{motion}")
        requests = [GenRequest(world.caption((name,), motion), GenSettings(guidance=5.0, seed=0)) for name in EMOJI]
        clips = meme.generate_batch(requests)
        rows = [np.concatenate([c.frames[i] for i in frames], axis=1) for c in clips]  # h (f w) 3 per emoji
        grid = np.concatenate(rows)
        Image.fromarray(grid).save(a.out / f"{motion}.png", optimize=True)
        print(f"{motion}: {a.out / f'{motion}.png'}")


if __name__ == "__main__":
    main()
