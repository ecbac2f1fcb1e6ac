"""How variation strength trades the clip's motion for variety, on the bundled tiny model.

    python benchmarks/variation.py [--strengths 0,0.1,0.2,0.3,0.5,0.7,1] [--motions bouncing,sliding,growing]

For each motion: tune one meme on a rendered source clip (`meme eval`'s recipe), then for each new subject and
each strength generate `--variants` clips (seeds 0, 1, ...: one batch) and score them as `meme eval` does
(colour, shape, trajectory correlation against the source) plus the variety between variants: the mean absolute
pixel difference between every pair, and the share of pairs whose trajectories differ (correlation below 0.9).
Writes benchmarks/results/variation-tiny-<date>.{json,md}.
"""

import argparse
import datetime
import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar import files  # noqa: E402
from memestar.runtime import GenSettings, Meme, variant_requests  # noqa: E402
from memestar.tiny.evaluate import PLAN, EvalOptions, pixel_difference, score_clip, trajectory, tune_on_world_clip  # noqa: E402
from memestar.tiny.recognise import read_clip_frames  # noqa: E402
from memestar.tiny.world import Sprite, clip_caption  # noqa: E402


def variety(clips: list[np.ndarray]) -> dict:
    pixel = pixel_difference(clips)
    tracks = [trajectory(read_clip_frames(c)) for c in clips]
    moved = []
    for a, b in itertools.combinations(tracks, 2):
        ok = ~(np.isnan(a).any(axis=1) | np.isnan(b).any(axis=1))
        if ok.sum() < 3:
            moved.append(True)
            continue
        corr = [np.corrcoef(a[ok, k], b[ok, k])[0, 1] for k in range(3) if a[ok, k].std() > 1 and b[ok, k].std() > 1]
        moved.append(bool(corr) and float(np.mean(corr)) < 0.9)
    return {"pixel_difference": pixel, "trajectories_differ": float(np.mean(moved))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strengths", default="0,0.1,0.2,0.3,0.5,0.7,1")
    parser.add_argument("--motions", default="bouncing,sliding,growing")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--variants", type=int, default=3)
    args = parser.parse_args(argv)
    strengths = [float(s) for s in args.strengths.split(",")]
    e = EvalOptions()
    guidance = e.guidances[0]  # the eval's default scale
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for motion in args.motions.split(","):
            source, targets = PLAN[motion]
            print(f"tuning {clip_caption(Sprite(*source), motion)!r} ...", file=sys.stderr, flush=True)
            _, _, _, track = tune_on_world_clip(
                motion, source, Path(tmp), Path(tmp) / motion, e.steps, e.lr, inversion_steps=e.inversion_steps
            )
            meme = Meme.load(Path(tmp) / motion)
            for (colour, shape), strength in itertools.product(targets[: args.subjects], strengths):
                prompt = clip_caption(Sprite(colour, shape), motion)
                settings = GenSettings(steps=e.gen_steps[0], guidance=guidance, variation=strength)
                clips = [g.frames for g in meme.generate_batch(variant_requests(prompt, settings, args.variants))]
                scores = [score_clip(c, colour, shape, source, track) for c in clips]
                rows.append(
                    {
                        "motion": motion,
                        "prompt": prompt,
                        "variation": strength,
                        **variety(clips),
                        **{k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]},
                    }
                )
    table = {}
    for strength in strengths:
        chosen = [r for r in rows if r["variation"] == strength]
        table[str(strength)] = {
            k: float(np.nanmean([r[k] for r in chosen]))
            for k in chosen[0]
            if k not in ("motion", "prompt", "variation")
        }
    report = {
        "benchmark": "variation strength",
        "date": datetime.date.today().isoformat(),
        "base": e.base,
        "settings": {**vars(args), "tune_steps": e.steps, "gen_steps": e.gen_steps, "guidance": guidance},
        "strengths": table,
        "rows": rows,
    }
    lines = [
        "# Variation strength on the tiny model: motion kept against variety",
        "",
        f"Date: {report['date']}. Motions {args.motions}, {args.subjects} new subjects each, {args.variants} "
        f"variants (seeds 0..{args.variants - 1}) per subject and strength; tuned {e.steps} steps, "
        f"{e.gen_steps} DDIM steps, guidance {guidance}.",
        "",
        "| variation | trajectory corr | colour right | shape right | source absent | pixel difference between "
        "variants | variant pairs whose motion differs |",
        "|---|---|---|---|---|---|---|",
    ]
    for strength, t in table.items():
        lines.append(
            f"| {strength} | {t['trajectory_correlation']:.2f} | {t['colour_right']:.2f} | "
            f"{t['shape_right']:.2f} | {t['source_absent']:.2f} | {t['pixel_difference']:.2f} | "
            f"{t['trajectories_differ']:.2f} |"
        )
    paths = files.write_report(report, "\n".join(lines) + "\n", f"variation-tiny-{report['date']}")
    print("\n".join(lines))
    print(f"wrote {paths[0]} and {paths[1]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
