"""How long the media stage takes and what each format costs in error: 16 frames at 128 and 256 px, on one CPU
core, in every format a chat app takes (GIF, WebP, APNG, WebM) and MP4, for four kinds of content; then each chat
app's preset, the whole fit of a sticker.

    python benchmarks/media_encode.py [--out benchmarks/results] [--core 0] [--repeat 7]

Content: `noise` (every pixel random: the worst case for a palette), `gradients` (smooth colour fields that drift,
with a little grain: what a diffusion model draws), `blocks` (16-px squares of random colours), `flat` (a sticker:
a few colours on a plain background, which the palette holds exactly). Error: the mean absolute difference between
the frames and the file read back, in levels (0-255) per pixel and channel. The encoders that WebM, MP4 and WebP
replaced on 2026-12-07 run beside today's in the same run (an ffmpeg process at libvpx's "good" deadline and
x264's medium preset; libwebp's method 4), so each figure has its comparison; the GIF's earlier encoders are
compared in media-encode-2026-12-06.
"""

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memestar.media import fit  # noqa: E402
from memestar.media.presets import PRESETS  # noqa: E402
from memestar.media.writers import encode_apng, encode_gif, encode_mp4, encode_webm, encode_webp  # noqa: E402

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


def ffmpeg_process(frames: np.ndarray, fps: float, suffix: str, **write_frames) -> bytes:
    """How WebM and MP4 were written until 2026-12-07: an ffmpeg process through imageio-ffmpeg, for comparison."""
    import imageio_ffmpeg

    h, w = frames.shape[1:3]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, quality=None, **write_frames)
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
        return path.read_bytes()


def previous_webm(frames: np.ndarray, fps: float, crf: int = 30) -> bytes:
    """VP9 with alpha at libvpx's "good" deadline, in an ffmpeg process (until 2026-12-07)."""
    if frames.shape[-1] == 3:
        frames = np.concatenate([frames, np.full(frames.shape[:3] + (1,), 255, np.uint8)], -1)
    options = ["-crf", str(crf), "-b:v", "0", "-auto-alt-ref", "0", "-an", "-row-mt", "1"]
    return ffmpeg_process(
        frames, fps, ".webm", codec="libvpx-vp9", pix_fmt_in="rgba", pix_fmt_out="yuva420p", macro_block_size=1,
        output_params=options,
    )  # fmt: skip


def previous_mp4(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """H.264 at x264's medium preset, in an ffmpeg process (until 2026-12-07)."""
    return ffmpeg_process(
        frames, fps, ".mp4", codec="libx264", pix_fmt_out="yuv420p", macro_block_size=2,
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
    )  # fmt: skip


def previous_webp(frames: np.ndarray, fps: float, quality: int = 80) -> bytes:
    """Animated WebP at libwebp's method 4 with Pillow's keyframe defaults (until 2026-12-07)."""
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="WEBP", save_all=True, append_images=images[1:], loop=0, duration=round(1000 / fps),
        quality=quality, method=4,
    )  # fmt: skip
    return buffer.getvalue()


# Each format today, and what it replaced (the same frames, in the same run)
ENCODERS = {
    "gif": encode_gif,
    "webp": encode_webp,
    "webp (method 4)": previous_webp,
    "apng": encode_apng,
    "webm": encode_webm,
    "webm (ffmpeg process, good)": previous_webm,
    "mp4": encode_mp4,
    "mp4 (ffmpeg process, medium)": previous_mp4,
}
PREVIOUS = {"webm": previous_webm, "webp": previous_webp}  # what the presets' containers were written with


def read_back(data: bytes, name: str) -> np.ndarray:
    """The frames a file holds, as RGB."""
    if name.startswith(("webm", "mp4")):
        with av.open(io.BytesIO(data)) as container:
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
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


def sticker(side: int) -> np.ndarray:
    """`gradients` cut out by a disc that drifts across the frame: RGBA, what `--sticker` hands a preset."""
    frames = content("gradients", side)
    y, x = np.mgrid[0:side, 0:side]
    alpha = [(x - side * (0.35 + 0.02 * i)) ** 2 + (y - side / 2) ** 2 < (side / 3) ** 2 for i in range(FRAMES)]
    return np.concatenate([frames, 255 * np.stack(alpha)[..., None].astype(np.uint8)], -1)


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
                        "error": float(np.abs(back.astype(float) - frames).mean()),
                    }
                )
    return rows


def run_presets(repeat: int) -> list[dict]:
    """Each chat-app preset's whole fit (canvas, timing, the quality ladder) of a 256-px sticker, with today's
    encoders and with those they replaced."""
    frames, rows = sticker(256), []
    for preset in PRESETS.values():
        for label, encoders in (("today", fit.PRESET_ENCODERS), ("before", {**fit.PRESET_ENCODERS, **PREVIOUS})):
            if label == "before" and preset.container not in PREVIOUS:
                continue
            saved = dict(fit.PRESET_ENCODERS)
            fit.PRESET_ENCODERS.update(encoders)
            try:
                data, note = fit.fit_to_preset(frames, 8.0, preset)
                ms = median_ms(lambda: fit.fit_to_preset(frames, 8.0, preset), repeat)
            finally:
                fit.PRESET_ENCODERS.update(saved)
            rows.append({"preset": preset.name, "encoders": label, "ms": ms, "kb": len(data) / 1000, "fit": note})
    return rows


def markdown(report: dict) -> str:
    lines = [
        f"# The media stage: {FRAMES} frames on one CPU core",
        "",
        f"Date: {report['date']}. Machine: {report['machine']}, pinned to one core. Median of {report['repeat']} "
        "encodings after one. Error: mean absolute difference of the file read back, levels per pixel and "
        "channel. A format in brackets is what today's replaced, run on the same frames in the same run.",
        "",
        "| px | content | format | ms | KiB | error |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['side']} | {r['content']} | {r['format']} | {r['ms']:.1f} | {r['kib']:.0f} | {r['error']:.2f} |"
        )
    lines += [
        "",
        f"## A chat app's file: each preset's whole fit of a {FRAMES}-frame, 256-px sticker",
        "",
        "Scaled to the preset's canvas, timed to its limits, then down its quality ladder until it fits "
        "(`media/fit.py`); `before`: the same fit with the WebM and WebP encoders of before 2026-12-07. Median of "
        f"{report['preset_repeat']} fits after one.",
        "",
        "| preset | encoders | ms | KB | what was fitted |",
        "|---|---|---|---|---|",
    ]
    for r in report["presets"]:
        lines.append(f"| {r['preset']} | {r['encoders']} | {r['ms']:.0f} | {r['kb']:.1f} | {r['fit']} |")
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
        "preset_repeat": max(1, args.repeat // 2),
        "presets": run_presets(max(1, args.repeat // 2)),
    }
    stem = args.out / f"media-encode-{report['date']}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
