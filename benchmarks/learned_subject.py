"""A subject learned from photos (issue 33, part 2: `meme subject learn`), measured through the product path on the
emoji world: how often do memes tuned on other subjects draw it, keeping their motion and leaving their source out?

Needs `make demo` first (its memes and source frames in demo/). For each emoji of `animated_still.PHOTOS`, a
subject is learned on the bundled emoji base with the defaults (`learn_subject`, 300 steps) from 1 photo (its cut-out
PNG) and from 4 (the cut-out and 3 renders on random backgrounds, as JPEG), never naming it; then both demo memes
(a cat face popping, a green apple running: neither shows it) generate their prompt with the subject in it
(`Meme.prompt_with_learned`, the default path), read back against each meme's source. With `--backends torch,ort`
the same subjects run on each backend (ort needs `meme export demo/meme-popping` and `demo/meme-running` first).

    python benchmarks/learned_subject.py --demo demo --photos 1,4
    python benchmarks/learned_subject.py --demo demo --photos 4 --backends torch,ort
"""

import argparse
import json
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from animated_still import PHOTOS, SOURCES, WORLD, score
from PIL import Image

from memestar.runtime import Meme
from memestar.tiny.emoji_world import atlas, random_sprite, render
from memestar.tiny.evaluate import trajectory
from memestar.train.options import SubjectOptions
from memestar.train.subject import learn_subject


def photos_of(name: str, n: int, folder: Path) -> Path:
    """`n` photos of the emoji in `folder`: its cut-out, then renders on random backgrounds saved as JPEG."""
    folder.mkdir(parents=True)
    atlas()[name].save(folder / "cut-out.png")
    rng = np.random.default_rng(7)
    for i in range(n - 1):
        Image.fromarray(render(random_sprite(rng, name))).save(folder / f"photo-{i}.jpg", quality=90)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    p.add_argument("--photos", default="1,4")
    p.add_argument("--backends", default="torch", help="comma-separated: torch, ort, trt")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results") / f"learned-subject-{date.today()}")
    a = p.parse_args()
    memes, tracks = {}, {}
    for motion, source_clip in SOURCES.items():
        frames = sorted((a.demo / f"{source_clip}-frames").glob("*.png"))
        source = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
        tracks[motion] = trajectory(WORLD.read_frames(source))
        for backend in a.backends.split(","):
            memes[motion, backend] = Meme.load(a.demo / f"meme-{motion}", backend=backend)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(k) for k in a.photos.split(",")):
            for name in (e for names in PHOTOS.values() for e in names):
                slug = name.replace(" ", "-")
                folder = photos_of(name, n, Path(tmp) / f"{slug}-{n}")
                t = time.perf_counter()
                learn_subject(
                    SubjectOptions(photos=folder, name=slug, base="emoji", out=Path(tmp) / f"s-{slug}-{n}", quiet=True)
                )
                seconds = time.perf_counter() - t
                for (motion, backend), meme in memes.items():
                    g = meme.generate(meme.prompt_with_learned(Path(tmp) / f"s-{slug}-{n}"))
                    right, absent, correlation = score(g.frames, name, WORLD.plan[motion][0][0], tracks[motion])
                    row = dict(
                        emoji=name,
                        photos=n,
                        meme=motion,
                        backend=backend,
                        learn_seconds=round(seconds, 1),
                        right=round(right, 3),
                        source_absent=round(absent, 3),
                        trajectory_correlation=round(correlation, 3),
                    )
                    rows.append(row)
                    print(row, flush=True)
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
