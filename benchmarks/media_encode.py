"""How long the media stage takes and what the GIF palette costs in error: 16 frames at 128 and 256 px, on one CPU
core, in every format a chat app takes (GIF, WebP, APNG, WebM), for four kinds of content.

    python benchmarks/media_encode.py [--out benchmarks/results] [--core 0] [--repeat 7]

Content: `noise` (every pixel random: the worst case for a palette), `gradients` (smooth colour fields that drift,
with a little grain: what a diffusion model draws), `blocks` (16-px squares of random colours), `flat` (a sticker:
a few colours on a plain background, which the palette holds exactly). Error: the mean absolute difference between
the frames and the file read back, in levels (0-255) per pixel and channel. Two earlier GIF encoders run beside
today's in the same run, so each figure has its comparison: the same palette and container over Floyd-Steinberg
dithering (2026-12-04 to 2026-12-06), and Pillow's GIF writer over frames quantised one by one (before 2026-12-04).
"""

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memestar.media.writers import (  # noqa: E402
    _exact_palette,
    _gif_container,
    encode_apng,
    encode_gif,
    encode_webm,
    encode_webp,
    shared_palette,
)

FRAMES = 16


def content(kind: str, side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.integers(0, 256, (FRAMES, side, side, 3), dtype=np.uint8)
    if kind == "blocks":
        cells = rng.integers(0, 256, (FRAMES, side // 16, side // 16, 3), dtype=np.uint8)
        return cells.repeat(16, 1).repeat(16, 2)
    if kind == "gradients":
        y, x = np.mgrid[0:side, 0:side] / side
        frames = []
        for i in range(FRAMES):
            rgb = np.stack(
                [
                    127 + 120 * np.sin(6 * x + 0.3 * i),
                    127 + 120 * np.cos(5 * y - 0.2 * i),
                    127 + 100 * np.sin(3 * (x + y) + 0.1 * i),
                ],
                -1,
            )
            frames.append(np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8))
        return np.stack(frames)
    if kind == "flat":
        frames = np.full((FRAMES, side, side, 3), (245, 240, 230), np.uint8)
        for i in range(FRAMES):
            c = side // 4 + i * side // (2 * FRAMES)
            frames[i, side // 3 : side // 3 + side // 4, c : c + side // 4] = (220, 60, 40)
            frames[i, side // 3 + side // 16 : side // 3 + side // 8, c + side // 16 : c + side // 8] = (20, 20, 20)
        return frames
    raise ValueError(kind)


def previous_gif(frames: np.ndarray, fps: float) -> bytes:
    """The GIF encoder as it was on 2026-12-04 (RGB frames), for comparison."""
    f, h, w, _ = frames.shape
    pixels = frames.reshape(-1, 3)[:: max(1, f * h * w // 262_144)]
    packed = np.unique((pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2])
    if len(packed) <= 256:
        exact = np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
        palette = Image.new("P", (1, 1))
        palette.putpalette(exact.tobytes())
    else:
        side = int(np.ceil(np.sqrt(len(pixels))))
        sheet = np.zeros((side * side, 3), np.uint8)
        sheet[: len(pixels)] = pixels
        sheet[len(pixels) :] = pixels[-1]
        palette = Image.fromarray(sheet.reshape(side, side, 3)).quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
    images = [Image.fromarray(x).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for x in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        loop=0,
        duration=round(1000 / fps),
        optimize=False,
        palette=bytes(palette.getpalette()),
        disposal=1,
    )
    return buffer.getvalue()


def floyd_steinberg_gif(frames: np.ndarray, fps: float) -> bytes:
    """Today's palette and container over Floyd-Steinberg dithering: the GIF encoder from 2026-12-04 to 2026-12-06,
    before the ordered dither, for comparison (RGB frames)."""
    exact = _exact_palette(frames, 256)
    palette = exact or shared_palette(frames)
    f, h, w, _ = frames.shape
    dither = Image.Dither.NONE if exact else Image.Dither.FLOYDSTEINBERG
    indices = np.asarray(Image.fromarray(frames.reshape(f * h, w, 3)).quantize(palette=palette, dither=dither))
    return _gif_container(indices.reshape(f, h, w), bytes(palette.getpalette()), fps, None)


ENCODERS = {
    "gif": encode_gif,
    "gif (Floyd-Steinberg)": floyd_steinberg_gif,
    "gif (2026-12-04)": previous_gif,
    "webp": encode_webp,
    "apng": encode_apng,
    "webm": encode_webm,
}


def read_back(data: bytes, kind: str) -> np.ndarray | None:
    if kind == "webm":
        return None  # lossy video: its error says nothing about a palette
    with Image.open(io.BytesIO(data)) as im:
        return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])


def median_ms(fn, repeat: int) -> float:
    fn()
    seconds = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - t)
    return 1000 * statistics.median(seconds)


def run(repeat: int) -> list[dict]:
    rows = []
    for side in (128, 256):
        for kind in ("noise", "gradients", "blocks", "flat"):
            frames = content(kind, side)
            for name, encode in ENCODERS.items():
                data = encode(frames, 8.0)
                back = read_back(data, name)
                rows.append(
                    {
                        "side": side,
                        "content": kind,
                        "format": name,
                        "ms": median_ms(lambda: encode(frames, 8.0), repeat),
                        "kib": len(data) / 1024,
                        "error": None if back is None else float(np.abs(back.astype(float) - frames).mean()),
                    }
                )
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"# The media stage: {FRAMES} frames on one CPU core",
        "",
        f"Date: {report['date']}. Machine: {report['machine']}, pinned to one core. Median of {report['repeat']} "
        "encodings after one. Error: mean absolute difference of the file read back, levels per pixel and "
        "channel (lossy WebP's for reference; WebM not read back). `gif`: today's (ordered dither); "
        "`gif (Floyd-Steinberg)`: the same palette and container over error diffusion (2026-12-04 to 12-06); "
        "`gif (2026-12-04)`: Pillow's GIF writer as before then; all in the same run.",
        "",
        "| px | content | format | ms | KiB | error |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        error = "-" if r["error"] is None else f"{r['error']:.2f}"
        lines.append(f"| {r['side']} | {r['content']} | {r['format']} | {r['ms']:.1f} | {r['kib']:.0f} | {error} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    report = {
        "benchmark": "media encode",
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "repeat": args.repeat,
        "rows": run(args.repeat),
    }
    stem = args.out / f"media-encode-{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
