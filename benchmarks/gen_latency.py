"""End-to-end `meme gen` latency (prompt -> encoded GIF on disk) against the plain eager fp32 diffusers way.

Both run in the same process on the same meme, video UNet, start latents and settings:
- ours: `memestar.runtime.Meme` (cached text, compute precision, CUDA-graph loop on GPU, our GIF writer);
- baseline: as a Tune-A-Video user runs it today: fp32, eager, diffusers' `DDIMScheduler`, the prompt
  encoded on every call, CFG as a batch of two, VAE decode of all frames, `imageio.mimsave` GIF.

    python benchmarks/gen_latency.py --base random-tiny --frames 8 --size 64          # CPU
    python benchmarks/gen_latency.py --base random-sd15 --frames 16 --size 256        # GPU

The meme is untrained (tuned tensors at their initial values, random start latents): timing does not
depend on the values. Results go to benchmarks/results/ as JSON and markdown, named by device and date.
"""

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import imageio.v2 as imageio
import torch
from diffusers import DDIMScheduler

from memestar.files import slug, write_json
from memestar.meme_folder import (ADAPTER, INVERSION, library_versions, load_inversion, save_inversion,
                                  write_meme_json)
from memestar.models.adapter import load_adapter, save_adapter
from memestar.models.base import load_base
from memestar.models.text import encode_prompts
from memestar.models.vae import decode_latents
from memestar.models.video_unet import VideoUNet
from memestar.runtime import Meme

RESULTS = Path(__file__).parent / "results"
PROMPT = "running blueberry-elephant"


def make_untrained_meme(base: str, frames: int, size: int, folder: Path) -> Path:
    folder.mkdir(parents=True)
    b = load_base(base)
    video = VideoUNet(b.unet)
    save_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
    latents = torch.randn(1, 4, frames, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    save_inversion(folder / INVERSION, latents, 50)
    write_meme_json(folder, {"prompt": "benchmark", "base": {"reference": base, "id": b.fingerprint.id},
                             "frames": frames, "size": size, "fps": 8.0, "group_norm": "frames",
                             "versions": library_versions()})
    return folder


def ours(meme: Meme, args, out: Path) -> dict:
    t0 = time.perf_counter()
    g = meme.generate(PROMPT, steps=args.steps, guidance=args.guidance, start="inversion")
    t = time.perf_counter()
    out.write_bytes(g.encode("gif")[0])
    g.seconds["encode"] = time.perf_counter() - t
    g.seconds["total"] = time.perf_counter() - t0
    return g.seconds


def baseline(base, video, start, args, out: Path) -> dict:
    seconds = {}
    t0 = t = time.perf_counter()
    text = encode_prompts(base.tokenizer, base.text_encoder, ["", PROMPT])
    seconds["text"] = time.perf_counter() - t
    t = time.perf_counter()
    scheduler = DDIMScheduler.from_config(base.scheduler_config)
    scheduler.set_timesteps(args.steps)
    x = start.clone()
    with torch.no_grad():
        for step_t in scheduler.timesteps:
            u, c = video(torch.cat([x, x]), step_t, text).chunk(2)
            x = scheduler.step(u + args.guidance * (c - u), step_t, x).prev_sample
    _sync(start.device)
    seconds["denoise"] = time.perf_counter() - t
    t = time.perf_counter()
    frames = decode_latents(base.vae, x)[0].cpu().numpy()
    seconds["decode"] = time.perf_counter() - t
    t = time.perf_counter()
    imageio.mimsave(out, list(frames), duration=125, loop=0)
    seconds["encode"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    return seconds


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


STAGES = ("text", "denoise", "decode", "encode", "total")


def summarize(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in STAGES}


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or 'x86_64'}, " \
        f"{torch.get_num_threads()} threads)"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", default="random-tiny")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto")
    p.add_argument("--no-baseline", action="store_true", help="skip the fp32 baseline (e.g. SD1.5 on a small GPU)")
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = make_untrained_meme(args.base, args.frames, args.size, tmp / "meme")
        meme = Meme.load(folder, device=args.device, precision=args.precision)
        device = meme.backend.device
        runs = [ours(meme, args, tmp / "ours.gif") for _ in range(args.repeat + 1)][1:]  # first: warm-up/capture
        result = {"ours": summarize(runs), "ours_precision": str(meme.backend.dtype).removeprefix("torch.")}
        if not args.no_baseline:
            del meme
            b = load_base(args.base, device=device, dtype=torch.float32)
            video = VideoUNet(b.unet)
            load_adapter(video, folder / ADAPTER, b.reference, b.fingerprint)
            start = load_inversion(folder).to(device)
            runs = [baseline(b, video, start, args, tmp / "base.gif") for _ in range(args.repeat + 1)][1:]
            result["baseline"] = summarize(runs)
            result["speedup"] = result["baseline"]["total"] / result["ours"]["total"]

    report = {"benchmark": "gen_latency", "device": device_name(device), "date": datetime.date.today().isoformat(),
              "base": args.base, "frames": args.frames, "size": args.size, "steps": args.steps,
              "guidance": args.guidance, "repeat": args.repeat, "versions": library_versions(), **result}
    args.results.mkdir(parents=True, exist_ok=True)
    stem = f"gen_latency-{args.base}-{args.frames}f-{args.size}px-{slug(report['device'])}-{report['date']}"
    write_json(args.results / f"{stem}.json", report)
    (args.results / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return report


def markdown(r: dict) -> str:
    lines = [f"# gen latency: {r['base']}, {r['frames']} frames, {r['size']} px, {r['steps']} steps, "
             f"guidance {r['guidance']}",
             "", f"Device: {r['device']}. Date: {r['date']}. Median of {r['repeat']} runs after one warm-up.", "",
             "| stage | ours (s) | baseline fp32 eager (s) |", "|---|---|---|"]
    for k in r["ours"]:
        base = f"{r['baseline'][k]:.4f}" if "baseline" in r else "-"
        lines.append(f"| {k} | {r['ours'][k]:.4f} | {base} |")
    if "speedup" in r:
        lines += ["", f"End to end: ours {r['ours']['total']:.3f} s ({r['ours_precision']}), baseline "
                      f"{r['baseline']['total']:.3f} s: {r['speedup']:.2f}x."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
