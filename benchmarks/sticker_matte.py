"""How well sticker mode cuts the subject out, on the tiny world, whose renderer knows the true matte.

    python benchmarks/sticker_matte.py [--subjects 40] [--noise 0,4,8]

For random sprites (any colour, shape, size and angle) in every motion, renders the clip, adds Gaussian pixel
noise (sampled frames are never clean), cuts the matte (`media/matte.py`) and scores it against the renderer's:
IoU of the subject (alpha > 0.5 against coverage > 0.5) per frame, and flicker, the mean change of alpha between
frames on pixels whose true coverage did not change. Writes benchmarks/results/sticker-matte-tiny-<date>.{json,md}.
"""

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from memestar import files  # noqa: E402
from memestar.media.matte import matte  # noqa: E402
from memestar.tiny.world import MOTIONS, motion, random_sprite, render, render_mask  # noqa: E402

TARGET_IOU = 0.9


def score(sprite, name: str, noise: float, rng: np.random.Generator) -> dict:
    steps = motion(sprite, name)
    frames = np.stack([render(s) for s in steps]).astype(np.float32)
    frames = (frames + rng.normal(0, noise, frames.shape)).round().clip(0, 255).astype(np.uint8)
    truth = np.stack([render_mask(s) for s in steps]) > 0.5
    alpha = matte(frames)
    cut = alpha > 0.5
    iou = [(c & t).sum() / max((c | t).sum(), 1) for c, t in zip(cut, truth)]
    steady = truth[1:] == truth[:-1]
    flicker = float(np.abs(np.diff(alpha, axis=0))[steady].mean())
    return {"iou": float(np.mean(iou)), "worst_frame_iou": float(np.min(iou)), "flicker": flicker}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--noise", default="0,4,8", help="Pixel noise levels (standard deviation, of 255).")
    args = parser.parse_args(argv)
    rows = []
    for noise in [float(n) for n in args.noise.split(",")]:
        rng = np.random.default_rng(0)
        for name in MOTIONS:
            scores = [score(random_sprite(rng), name, noise, rng) for _ in range(args.subjects)]
            rows.append(
                {
                    "noise": noise,
                    "motion": name,
                    "clips": len(scores),
                    "mean_iou": float(np.mean([s["iou"] for s in scores])),
                    "worst_clip_iou": float(np.min([s["iou"] for s in scores])),
                    "share_at_target": float(np.mean([s["iou"] >= TARGET_IOU for s in scores])),
                    "mean_flicker": float(np.mean([s["flicker"] for s in scores])),
                }
            )
    date = datetime.date.today().isoformat()
    report = {
        "benchmark": "sticker matte",
        "world": "tiny",
        "subjects": args.subjects,
        "target_iou": TARGET_IOU,
        "date": date,
        "rows": rows,
    }
    lines = [
        f"# Sticker matte on the tiny world: {args.subjects} random subjects per motion and noise level",
        "",
        f"Date: {date}. IoU of alpha > 0.5 against the renderer's coverage > 0.5, per frame, averaged over the "
        f"clip; flicker: mean |alpha change| between frames where the true coverage is unchanged. Target: IoU "
        f">= {TARGET_IOU}.",
        "",
        "| noise | motion | mean IoU | worst clip IoU | clips at target | mean flicker |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['noise']:g} | {r['motion']} | {r['mean_iou']:.3f} | {r['worst_clip_iou']:.3f} | "
        f"{100 * r['share_at_target']:.0f}% | {r['mean_flicker']:.4f} |"
        for r in rows
    ]
    out = ROOT / "benchmarks" / "results" / f"sticker-matte-tiny-{date}"
    files.write_report(report, "\n".join(lines) + "\n", out.name, out.with_suffix(".json"), out.with_suffix(".md"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
