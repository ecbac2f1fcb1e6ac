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
from memestar.media.writers import (  # noqa: E402
    OverBudget,
    encode_apng,
    encode_gif,
    encode_mp4,
    encode_webm,
    encode_webp,
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


def whole_then_within(encode):
    """An earlier encoder as a fitter calls today's: it writes the whole file, then says whether it is over."""

    def within(frames: np.ndarray, fps: float, max_bytes: int | None = None, **settings) -> bytes:
        data = encode(frames, fps, **settings)
        if max_bytes is not None and len(data) > max_bytes:
            raise OverBudget(len(data))
        return data

    return within


@whole_then_within
def previous_webm(frames: np.ndarray, fps: float, crf: int = 30) -> bytes:
    """VP9 with alpha at libvpx's "good" deadline, in an ffmpeg process (until 2026-12-07)."""
    if frames.shape[-1] == 3:
        frames = np.concatenate([frames, np.full(frames.shape[:3] + (1,), 255, np.uint8)], -1)
    options = ["-crf", str(crf), "-b:v", "0", "-auto-alt-ref", "0", "-an", "-row-mt", "1"]
    return ffmpeg_process(
        frames, fps, ".webm", codec="libvpx-vp9", pix_fmt_in="rgba", pix_fmt_out="yuva420p", macro_block_size=1,
        output_params=options,
    )  # fmt: skip


@whole_then_within
def previous_mp4(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """H.264 at x264's medium preset, in an ffmpeg process (until 2026-12-07)."""
    return ffmpeg_process(
        frames, fps, ".mp4", codec="libx264", pix_fmt_out="yuv420p", macro_block_size=2,
        output_params=["-crf", str(crf), "-movflags", "+faststart"],
    )  # fmt: skip


@whole_then_within
def previous_webp(frames: np.ndarray, fps: float, quality: int = 80) -> bytes:
    """Animated WebP at libwebp's method 4 with Pillow's keyframe defaults (until 2026-12-07)."""
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="WEBP", save_all=True, append_images=images[1:], loop=0, duration=round(1000 / fps),
        quality=quality, method=4,
    )  # fmt: skip
    return buffer.getvalue()


@whole_then_within
def previous_apng(frames: np.ndarray, fps: float, colors: int | None = None) -> bytes:
    """APNG in fewer colours as until 2026-12-07: a palette per frame, so Pillow writes RGBA. With today's disposal
    (the box that changed replaces what was there): the earlier one raised on palette frames of the `flat` clip and
    gave files within 0.2% of it elsewhere."""
    from PIL.PngImagePlugin import Blend, Disposal

    images = [Image.fromarray(f, {3: "RGB", 4: "RGBA"}[f.shape[-1]]) for f in frames]
    if colors is not None:
        images = [i.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for i in images]
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="PNG", save_all=True, append_images=images[1:], loop=0, duration=round(1000 / fps),
        disposal=Disposal.OP_NONE, blend=Blend.OP_SOURCE, default_image=False,
    )  # fmt: skip
    return buffer.getvalue()


# Each format today, and what it replaced (the same frames, in the same run)
ENCODERS = {
    "gif": encode_gif,
    "webp": encode_webp,
    "webp (method 4)": previous_webp,
    "apng": encode_apng,
    "apng, 64 colours": lambda frames, fps: encode_apng(frames, fps, colors=64),
    "apng, 64 colours (a palette per frame)": lambda frames, fps: previous_apng(frames, fps, colors=64),
    "webm": encode_webm,
    "webm (ffmpeg process, good)": previous_webm,
    "mp4": encode_mp4,
    "mp4 (ffmpeg process, medium)": previous_mp4,
}
# what the presets' containers were written with
PREVIOUS = {"webm": previous_webm, "webp": previous_webp, "apng": previous_apng}


def read_back(data: bytes, name: str) -> np.ndarray:
    """The frames a file holds, as RGB."""
    if name.startswith(("webm", "mp4")):  # a format's name, or a preset's container
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


def fitted_error(data: bytes, preset, frames: np.ndarray) -> float:
    """Mean absolute difference of the fitted file's frames from the clip on the preset's canvas, in levels over the
    RGB of pixels the clip shows (alpha above 0); NaN where fitting dropped frames."""
    canvas = fit.to_canvas(frames, preset.side)
    back = read_back(data, preset.container)
    if len(back) != len(canvas):
        return float("nan")
    shown = canvas[..., 3] > 0 if canvas.shape[-1] == 4 else np.ones(canvas.shape[:3], bool)
    return float(np.abs(back.astype(float) - canvas[..., :3])[shown].mean())


def run_presets(repeat: int) -> list[dict]:
    """Each chat-app preset's whole fit (canvas, timing, the quality ladder) of a 256-px sticker and of an opaque
    clip, with today's encoders and with those they replaced."""
    rows = []
    for clip, frames in (("sticker", sticker(256)), ("gradients", content("gradients", 256))):
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
                rows.append(
                    {
                        "clip": clip,
                        "preset": preset.name,
                        "encoders": label,
                        "ms": ms,
                        "kb": len(data) / 1000,
                        "error": fitted_error(data, preset, frames),
                        "fit": note,
                    }
                )
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
        f"## A chat app's file: each preset's whole fit of a {FRAMES}-frame, 256-px clip",
        "",
        "A sticker (`gradients` cut out by a drifting disc, RGBA) and the opaque `gradients` clip, scaled to the "
        "preset's canvas, timed to its limits, then down its quality ladder until it fits (`media/fit.py`); "
        "`before`: the same fit with the WebM, WebP and APNG encoders of before 2026-12-07, which wrote each "
        f"rung whole. Median of {report['preset_repeat']} fits after one. Error: levels per shown pixel and channel "
        "against the clip on the canvas.",
        "",
        "| clip | preset | encoders | ms | KB | error | what was fitted |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["presets"]:
        lines.append(
            f"| {r['clip']} | {r['preset']} | {r['encoders']} | {r['ms']:.0f} | {r['kb']:.1f} | {r['error']:.2f} "
            f"| {r['fit']} |"
        )
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
