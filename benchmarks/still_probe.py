"""Probe for issue 33 ("animate a still"): a still's subject pasted along a meme's subject track, noised to a strength
(SDEdit), then denoised by the meme with following on. Which strength keeps the still's subject and moves it with the
meme, with and without the subject named in the prompt?

Needs `make demo` first (its memes and source frames in demo/). Torch backend, DDIM 10, guidance 5 until 0.2, the
default path otherwise; the meme's DDIM inversion x_T (standardised) is the noise, as a generated clip starts from it.

    python benchmarks/still_probe.py --demo demo --strengths 0.1,0.2,0.3,0.5,0.7,1.0
"""

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from memestar.models.vae import encode_frames
from memestar.runtime import Meme
from memestar.sampling.ddim import DDIMSchedule
from memestar.sampling.follow import following
from memestar.sampling.plan import guidance_scales
from memestar.tiny.emoji_reader import fit_background
from memestar.tiny.emoji_world import atlas
from memestar.tiny.evaluate import trajectory, trajectory_scores
from memestar.tiny.worlds import WORLDS

WORLD = WORLDS["emoji"]
STEPS, GUIDANCE, GUIDANCE_UNTIL = 10, 5.0, 0.2
SOURCES = {"popping": "a-cat-face-popping", "running": "a-green-apple-running"}
PHOTOS = {  # never a tuning clip's subject, nor a new subject of this motion in the plan
    "popping": ("bear face", "fox face", "koala", "tiger face"),
    "running": ("peach", "doughnut", "frog face", "cherries"),
}
PROMPTS = {
    "named": "the prompt names the still's emoji ('a peach running')",
    "unnamed": "the prompt is the motion alone ('running')",
    "unnamed, source negative": "the motion alone, the meme's source emoji as the negative prompt ('a green apple')",
}


def paste_along_track(still: Image.Image, track: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The RGBA still's opaque part on `background` `(s, s, 3)` in every frame of `track` `(f, 3)` (centroid x, y and
    size in half-widths of the frame): scaled so that the square root of its opaque area is the track's size, its
    opaque centroid on the track's. -> `(f, s, s, 3)` uint8."""
    side = background.shape[0]
    own_size = np.sqrt(np.asarray(still.getchannel("A"), np.float32).sum() / 255)
    frames = []
    for x, y, size in track:
        scale = size * (side - 1) / 2 / own_size
        small = still.resize(
            (max(1, round(still.width * scale)), max(1, round(still.height * scale))), Image.Resampling.LANCZOS
        )
        alpha = np.asarray(small.getchannel("A"), np.float32)
        cy = (alpha.sum(1) * np.arange(small.height)).sum() / alpha.sum()
        cx = (alpha.sum(0) * np.arange(small.width)).sum() / alpha.sum()
        canvas = Image.fromarray(background.astype(np.uint8))
        canvas.paste(small, (round((x + 1) * (side - 1) / 2 - cx), round((y + 1) * (side - 1) / 2 - cy)), small)
        frames.append(np.asarray(canvas))
    return np.stack(frames)


@torch.inference_mode()
def animate(meme: Meme, composite: np.ndarray, prompt: str, negative: str, strength: float) -> np.ndarray:
    """`composite` `(f, s, s, 3)` encoded, noised to the step whose timestep is at most `strength` of training's, and
    denoised from there by the meme (following its track) -> `(f, s, s, 3)` uint8."""
    backend = meme.backend
    track = meme.manifest.subject_track.tensor()[None]  # 1 f 3
    z0 = encode_frames(backend.base.vae, torch.from_numpy(composite)).float()  # 1 c f h w
    schedule = DDIMSchedule(backend.scheduler_config, STEPS)
    first = next(i for i, t in enumerate(schedule.timestep_list) if t <= strength * 1000)
    noise = meme.inversion.float()
    noise = (noise - noise.mean()) / noise.std()
    alpha = schedule.alpha[first]
    x = alpha.sqrt() * z0 + (1 - alpha).sqrt() * noise
    text = torch.cat([meme.text_embedding(negative), meme.text_embedding(prompt)])
    plan = backend.step_plan(schedule, True, GUIDANCE_UNTIL, 1)[first:]
    model_fn = backend._model_fn(text, guidance_scales(GUIDANCE, 1, backend.device), plan)
    model_fn = following(
        model_fn,
        backend.subject_measure("latents"),
        track,
        backend.scheduler_config,
        schedule.timestep_list[first:],
    )
    for i in range(first, len(schedule)):
        x = schedule.step(model_fn(x, schedule.timesteps[i]), i, x)
    return backend.decode(x)[0].numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    p.add_argument("--strengths", default="0.1,0.2,0.3,0.5,0.7,1.0")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results") / f"still-probe-{date.today()}")
    a = p.parse_args()
    strengths = [float(s) for s in a.strengths.split(",")]
    rows = []
    for motion, source_clip in SOURCES.items():
        frames = sorted((a.demo / f"{source_clip}-frames").glob("*.png"))
        source_frames = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames])
        source_track = trajectory(WORLD.read_frames(source_frames))
        background = fit_background(source_frames[0])  # the source's plain background
        source = WORLD.plan[motion][0][0]
        meme = Meme.load(a.demo / f"meme-{motion}")
        composites = {
            name: paste_along_track(atlas()[name], meme.manifest.subject_track.tensor().numpy(), background)
            for name in PHOTOS[motion]
        }
        for prompt_kind in PROMPTS:
            for strength in strengths:
                scores, t = [], time.perf_counter()
                for name, composite in composites.items():
                    prompt = f"a {name} {motion}" if prompt_kind == "named" else motion
                    negative = f"a {source}" if "negative" in prompt_kind else ""
                    clip = animate(meme, composite, prompt, negative, strength)
                    reads = [r.subject[0] if r.subject else None for r in WORLD.read_frames(clip)]
                    correlation, _ = trajectory_scores(source_track, trajectory(WORLD.read_frames(clip)))
                    change = float(np.abs(clip.astype(float) - composite.astype(float)).mean())
                    right, absent = np.mean([r == name for r in reads]), np.mean([r != source for r in reads])
                    scores.append((right, absent, correlation, change))
                right, absent, correlation, change = np.mean(scores, axis=0)
                row = dict(
                    motion=motion,
                    prompt=prompt_kind,
                    strength=strength,
                    still_right=round(float(right), 3),
                    source_absent=round(float(absent), 3),
                    trajectory_correlation=round(float(correlation), 3),
                    change=round(float(change), 1),
                    seconds_per_clip=round((time.perf_counter() - t) / len(composites), 2),
                )
                rows.append(row)
                print(row, flush=True)
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [
        "| motion | prompt | strength | still's emoji read | source absent | trajectory corr | change from the paste |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['motion']} | {r['prompt']} | {r['strength']:g} | {r['still_right']:.2f} | {r['source_absent']:.2f} "
            f"| {r['trajectory_correlation']:.2f} | {r['change']:.1f} |"
        )
    a.out.with_suffix(".table.md").write_text("\n".join(lines) + "\n")  # pasted into the dated .md with its reading


if __name__ == "__main__":
    main()
