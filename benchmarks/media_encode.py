"""How long the media stage takes and what each format costs in error: 16 frames at 128 and 256 px, on one CPU
core, in every format a chat app takes (GIF, WebP, APNG, WebM) and MP4, for four kinds of content; then each chat
app's preset, the whole fit of a sticker, the scaling to its canvas and the sticker look.

    python benchmarks/media_encode.py [--out benchmarks/results] [--core 0] [--repeat 7] [--suffix S]

Content: `noise` (every pixel random: the worst case for a palette), `gradients` (smooth colour fields that drift,
with a little grain: what a diffusion model draws), `blocks` (16-px squares of random colours), `flat` (a sticker:
a few colours on a plain background, which the palette holds exactly). Error: the mean absolute difference between
the frames and the file read back, in levels (0-255) per pixel and channel. The encoders that WebM, MP4 and WebP
replaced on 2026-12-07 run beside today's in the same run (an ffmpeg process at libvpx's "good" deadline and
x264's medium preset; libwebp's method 4), APNG as Pillow wrote it until the evening of 2026-12-07 (zlib), and
16-colour palettes as Pillow's octree drew them, so each figure has its comparison; the GIF's earlier encoders are
compared in media-encode-2026-12-06.
"""

import argparse
import contextlib
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
from unittest import mock

import av
import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memestar.media import fit, look, matte, writers  # noqa: E402
from memestar.media.matte import paint_under  # noqa: E402
from memestar.media.presets import PRESETS  # noqa: E402
from memestar.media.resize import resize_frames  # noqa: E402
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
    images = [Image.fromarray(f, {3: "RGB", 4: "RGBA"}[f.shape[-1]]) for f in frames]
    if colors is not None:
        images = [i.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for i in images]
    return pillow_png_bytes(images, fps, io.BytesIO())


def pillow_png_bytes(images: list, fps: float, buffer: io.BytesIO) -> bytes:
    """`images` as Pillow's PNG writer writes an APNG (zlib's level 6, a filter chosen per row): each frame the box
    that changed, replacing what was there."""
    from PIL.PngImagePlugin import Blend, Disposal

    images[0].save(
        buffer, format="PNG", save_all=True, append_images=images[1:], loop=0, duration=round(1000 / fps),
        disposal=Disposal.OP_NONE, blend=Blend.OP_SOURCE, default_image=False,
    )  # fmt: skip
    return buffer.getvalue()


class BudgetedBuffer(io.BytesIO):
    """A BytesIO that raises `OverBudget` as soon as what was written passes `max_bytes`, as the writers' was."""

    def __init__(self, max_bytes: int | None):
        super().__init__()
        self.max_bytes = max_bytes

    def write(self, data) -> int:
        written = super().write(data)
        writers._within(self.tell(), self.max_bytes)
        return written


def pillow_apng(frames: np.ndarray, fps: float, colors: int | None = None, max_bytes: int | None = None) -> bytes:
    """APNG as Pillow's writer wrote it until 2026-12-07 (zlib's level 6, a filter chosen per row), stopping at the
    first chunk over the budget: the same frames and palette as today's."""
    f, h, w, c = frames.shape
    mode = {3: "RGB", 4: "RGBA"}[c]
    if colors is None:
        images = [Image.fromarray(x, mode) for x in frames]
    else:
        tall = Image.fromarray(frames.reshape(f * h, w, c), mode).quantize(
            colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        images = [tall.crop((0, i * h, w, (i + 1) * h)) for i in range(f)]
    return pillow_png_bytes(images, fps, BudgetedBuffer(max_bytes))


def octree_own(encode):
    """`encode` with Pillow's fast octree drawing every palette itself, 32 and 16 colours too, as until the late
    evening of 2026-12-07 (not its 256 reduced by weighted k-means)."""

    def run(*args, **kwargs):
        with mock.patch.object(writers, "REDUCED_UP_TO", 0):
            return encode(*args, **kwargs)

    return run


# Each format today, and what it replaced (the same frames, in the same run)
ENCODERS = {
    "gif": encode_gif,
    "gif, 16 colours": lambda frames, fps: encode_gif(frames, fps, colors=16),
    "gif, 16 colours (the octree's own)": octree_own(lambda frames, fps: encode_gif(frames, fps, colors=16)),
    "webp": encode_webp,
    "webp (method 4)": previous_webp,
    "apng": encode_apng,
    "apng (Pillow's writer)": pillow_apng,
    "apng, 64 colours": lambda frames, fps: encode_apng(frames, fps, colors=64),
    "apng, 64 colours (Pillow's writer)": lambda frames, fps: pillow_apng(frames, fps, colors=64),
    "apng, 64 colours (a palette per frame)": lambda frames, fps: previous_apng(frames, fps, colors=64),
    "apng, 16 colours": lambda frames, fps: encode_apng(frames, fps, colors=16),
    "apng, 16 colours (the octree's own)": octree_own(lambda frames, fps: encode_apng(frames, fps, colors=16)),
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
    """`gradients` cut out by a disc that drifts across the frame, over white where it is transparent: RGBA, as the
    sticker look hands a preset (`matte.paint_under`)."""
    frames = content("gradients", side)
    y, x = np.mgrid[0:side, 0:side]
    alpha = [(x - side * (0.35 + 0.02 * i)) ** 2 + (y - side / 2) ** 2 < (side / 3) ** 2 for i in range(FRAMES)]
    return paint_under(np.concatenate([frames, 255 * np.stack(alpha)[..., None].astype(np.uint8)], -1))


def previous_canvas(frames: np.ndarray, side: int, nearest: bool = False) -> np.ndarray:
    """Pillow's Lanczos, frame by frame, RGBA premultiplied inside Pillow (until 2026-12-07)."""
    if frames.shape[1:3] == (side, side):
        return frames
    mode = {3: "RGB", 4: "RGBA"}[frames.shape[-1]]
    how = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
    return np.stack([np.asarray(Image.fromarray(f, mode).resize((side, side), how)) for f in frames])


CANVASES = {"today": resize_frames, "before": previous_canvas}


def emoji_clip() -> np.ndarray:
    """16 glyphs of the bundled emoji atlas (96 px, RGBA, transparent around them)."""
    atlas = np.asarray(Image.open(ROOT / "memestar" / "tiny" / "emoji" / "atlas.png").convert("RGBA"))
    step = atlas.shape[1] // 96 // FRAMES
    return np.stack([atlas[:, i * 96 : (i + 1) * 96] for i in range(0, step * FRAMES, step)])


def look_canvas(label: str, frames: np.ndarray, side: int) -> np.ndarray:
    """A cut-out clip on the canvas as the sticker look drew it: `today` paints the outline's white under it, then
    scales; `before` scaled (premultiplied) and then painted."""
    if label == "today":
        return resize_frames(paint_under(frames), side)
    return paint_under(previous_canvas(frames, side))


def subject_on_plain(side: int) -> np.ndarray:
    """A disc of `gradients` on a flat blue background: what the sticker look cuts out (`--sticker`)."""
    y, x = np.mgrid[0:side, 0:side]
    disc = ((x - side / 2) ** 2 + (y - side / 2) ** 2 < (side * 0.31) ** 2)[None, ..., None]
    return np.where(disc, content("gradients", side), np.uint8([110, 120, 240])).astype(np.uint8)


# The sticker look's filters as they were until 2026-12-07, copied here on purpose as the comparison: Pillow's
# median and flood fill (Python, pixel by pixel), numpy's shifted maxima, the colour painted under in float.


def previous_median3(alpha: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(a).filter(ImageFilter.MedianFilter(3))) for a in alpha])


def previous_fill_holes(mask: np.ndarray) -> np.ndarray:
    out = []
    for m in mask:
        h, w = m.shape
        padded = Image.new("L", (w + 2, h + 2), 0)
        padded.paste(Image.fromarray(m.astype(np.uint8) * 255), (1, 1))
        ImageDraw.floodfill(padded, (0, 0), 128)
        out.append(np.asarray(padded)[1:-1, 1:-1] != 128)
    return np.stack(out)


def previous_grow_float(x: np.ndarray, width: int) -> np.ndarray:
    for _ in range(width):
        src = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")
        x = np.maximum.reduce([src[:, i : i + x.shape[1], j : j + x.shape[2]] for i in range(3) for j in range(3)])
    return x


def previous_grow(alpha: np.ndarray, width: int) -> np.ndarray:
    out = alpha.copy()
    for step in range(width):
        src = np.pad(out, ((0, 0), (1, 1), (1, 1)))
        grown = np.maximum.reduce(
            [src[:, 1:-1, 1:-1], src[:, :-2, 1:-1], src[:, 2:, 1:-1], src[:, 1:-1, :-2], src[:, 1:-1, 2:]]
        )
        if step % 2 == 0:
            grown = np.maximum.reduce([grown, src[:, :-2, :-2], src[:, :-2, 2:], src[:, 2:, :-2], src[:, 2:, 2:]])
        out = grown
    return out


def previous_paint_under(frames: np.ndarray, colour=matte.OUTLINE_COLOUR) -> np.ndarray:
    alpha = frames[..., 3:].astype(np.float32) / 255
    rgb = alpha * frames[..., :3] + (1 - alpha) * np.array(colour, np.float32)
    return np.concatenate([rgb.round().astype(np.uint8), frames[..., 3:]], axis=-1)


PREVIOUS_LOOK = {
    (matte, "median3"): previous_median3,
    (matte, "fill_holes"): previous_fill_holes,
    (matte, "grow_float"): previous_grow_float,
    (matte, "grow"): previous_grow,
    (look, "paint_under"): previous_paint_under,
    (look, "resize_frames"): previous_canvas,
}


def run_look(repeat: int) -> list[dict]:
    """The sticker look (matte, the outline's white, canvas, outline) of a 256-px clip at 256 and 512 px, and the
    matte alone: today's, and with the filters and the canvas of before 2026-12-07 (`PREVIOUS_LOOK`)."""
    frames = subject_on_plain(256)
    rows = []
    for label in ("today", "before"):
        with contextlib.ExitStack() as stack:
            if label == "before":
                for (module, name), previous in PREVIOUS_LOOK.items():
                    stack.enter_context(mock.patch.object(module, name, previous))
            rows.append(
                {
                    "what": "matte",
                    "side": 256,
                    "variant": label,
                    "ms": median_ms(lambda: matte.with_matte(frames), repeat),
                }
            )
            for side in (256, 512):
                ms = median_ms(lambda: look.apply_look(frames, look.Look(sticker=True), side), repeat)
                rows.append({"what": "sticker look", "side": side, "variant": label, "ms": ms})
    return rows


def run_canvas(repeat: int) -> list[dict]:
    """Each way of scaling to a canvas: the time for a 256-px clip to each preset's side, and the error of a 2x
    round trip (box down to half, then up again) against the original, in levels per shown pixel and channel (a
    cut-out one as the sticker look scales it, over white)."""
    rows = []
    clips = {"sticker 256": sticker(256), "gradients 256": content("gradients", 256)}
    for name, frames in clips.items():
        for side in sorted({p.side for p in PRESETS.values()}):
            for label, scale in CANVASES.items():
                ms = median_ms(lambda: scale(frames, side), repeat)
                rows.append({"test": "time", "clip": name, "side": side, "canvas": label, "ms": ms})
    originals = {f"{k} 512": content(k, 512) for k in ("gradients", "blocks", "noise")} | {"emoji 96": emoji_clip()}
    for name, native in originals.items():
        side = native.shape[1]
        mode = {3: "RGB", 4: "RGBA"}[native.shape[-1]]
        half = np.stack(
            [np.asarray(Image.fromarray(f, mode).resize((side // 2,) * 2, Image.Resampling.BOX)) for f in native]
        )
        cut_out = native.shape[-1] == 4
        target = paint_under(native) if cut_out else native
        shown = native[..., 3] > 0 if cut_out else np.ones(native.shape[:3], bool)
        for label, scale in CANVASES.items():
            back = (look_canvas(label, half, side) if cut_out else scale(half, side)).astype(float)
            error = np.abs(back[..., :3] - target[..., :3])[shown].mean()
            alpha = float(np.abs(back[..., 3] - native[..., 3]).mean()) if cut_out else None
            row = {"test": "round trip", "clip": name, "side": side, "canvas": label, "error": float(error)}
            rows.append({**row, "alpha": alpha})
    return rows


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


def fitted_error(data: bytes, preset, frames: np.ndarray, scale) -> float:
    """Mean absolute difference of the fitted file's frames from the clip on the preset's canvas (as `scale` drew
    it), in levels over the RGB of pixels the clip shows (alpha above 0); NaN where fitting dropped frames."""
    canvas = scale(frames, preset.side)
    back = read_back(data, preset.container)
    if len(back) != len(canvas):
        return float("nan")
    shown = canvas[..., 3] > 0 if canvas.shape[-1] == 4 else np.ones(canvas.shape[:3], bool)
    return float(np.abs(back.astype(float) - canvas[..., :3])[shown].mean())


VARIANTS = {  # label -> (encoders, canvas, `writers.REDUCED_UP_TO`: 0, the octree's own palettes at every count)
    "today": ({}, resize_frames, writers.REDUCED_UP_TO),
    "the octree's own palettes": ({}, resize_frames, 0),
    "Pillow's APNG writer": ({"apng": pillow_apng}, resize_frames, 0),
    "Lanczos canvas": ({}, previous_canvas, writers.REDUCED_UP_TO),
    "before": (PREVIOUS, previous_canvas, 0),
}
ONLY = {"the octree's own palettes": ("gif", "apng"), "Pillow's APNG writer": ("apng",), "before": tuple(PREVIOUS)}


def run_presets(repeat: int) -> list[dict]:
    """Each chat-app preset's whole fit (canvas, timing, the quality ladder) of a 256-px sticker and of an opaque
    clip: today's; with the octree's own palettes at every count (the GIF and APNG presets); with Pillow's APNG
    writer (the APNG presets); with the canvas of before 2026-12-07 (Pillow's Lanczos); and with its encoders too."""
    rows = []
    for clip, frames in (("sticker", sticker(256)), ("gradients", content("gradients", 256))):
        for preset in PRESETS.values():
            for label, (encoders, canvas, reduced_up_to) in VARIANTS.items():
                if preset.container not in ONLY.get(label, (preset.container,)):
                    continue
                with (
                    mock.patch.dict(fit.PRESET_ENCODERS, encoders),
                    mock.patch.object(fit, "resize_frames", canvas),
                    mock.patch.object(writers, "REDUCED_UP_TO", reduced_up_to),
                ):
                    data, note = fit.fit_to_preset(frames, 8.0, preset)
                    ms = median_ms(lambda: fit.fit_to_preset(frames, 8.0, preset), repeat)
                rows.append(
                    {
                        "clip": clip,
                        "preset": preset.name,
                        "variant": label,
                        "ms": ms,
                        "kb": len(data) / 1000,
                        "error": fitted_error(data, preset, frames, canvas),
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
    canvas = report["canvas"]
    sides = sorted({r["side"] for r in canvas if r["test"] == "time"})
    lines += [
        "",
        f"## Scaling to a preset's canvas: {FRAMES} frames of 256 px",
        "",
        "`today`: torch's bicubic with antialiasing on uint8 frames (`media/resize.py`); `before`: Pillow's Lanczos "
        "frame by frame (RGBA premultiplied inside Pillow), until 2026-12-07. Milliseconds, median of "
        f"{report['repeat']} after one:",
        "",
        "| clip | canvas | " + " | ".join(f"{s} px" for s in sides) + " |",
        "|---|---|" + "---|" * len(sides),
    ]
    for clip in dict.fromkeys(r["clip"] for r in canvas if r["test"] == "time"):
        for label in CANVASES:
            ms = {r["side"]: r["ms"] for r in canvas if (r["test"], r["clip"], r["canvas"]) == ("time", clip, label)}
            lines.append(f"| {clip} | {label} | " + " | ".join(f"{ms[s]:.1f}" for s in sides) + " |")
    lines += [
        "",
        "Up by 2x: each original boxed down to half its side, then scaled back up; levels of error per shown pixel "
        "and channel against the original (emoji: 16 glyphs of the bundled atlas, over white):",
        "",
        "| original | " + " | ".join(CANVASES) + " |",
        "|---|" + "---|" * len(CANVASES),
    ]
    for clip in dict.fromkeys(r["clip"] for r in canvas if r["test"] == "round trip"):
        trip = {r["canvas"]: r for r in canvas if (r["test"], r["clip"]) == ("round trip", clip)}
        lines.append(f"| {clip} | " + " | ".join(f"{trip[c]['error']:.2f}" for c in CANVASES) + " |")
        if trip["today"]["alpha"] is not None:
            lines.append(f"| {clip}, alpha | " + " | ".join(f"{trip[c]['alpha']:.2f}" for c in CANVASES) + " |")
    lines += [
        "",
        f"## The sticker look: {FRAMES} frames of 256 px cut out and outlined",
        "",
        "A disc of `gradients` on flat blue through `apply_look(..., Look(sticker=True), side)` (`media/look.py`): "
        "the matte, the outline's white painted under it, the canvas, the outline grown, with OpenCV's filters; "
        "`before`: with the filters of before 2026-12-07 (Pillow's median and flood fill, numpy's shifted maxima, "
        "the white painted in float) and the canvas (Pillow's Lanczos). Milliseconds, median of "
        f"{report['preset_repeat']} after one:",
        "",
        "| what | canvas px | today | before |",
        "|---|---|---|---|",
    ]
    for what, side in dict.fromkeys((r["what"], r["side"]) for r in report["look"]):
        ms = {r["variant"]: r["ms"] for r in report["look"] if (r["what"], r["side"]) == (what, side)}
        lines.append(f"| {what} | {side} | {ms['today']:.0f} | {ms['before']:.0f} |")
    lines += [
        "",
        f"## A chat app's file: each preset's whole fit of a {FRAMES}-frame, 256-px clip",
        "",
        "A sticker (`gradients` cut out by a drifting disc, over white where transparent, RGBA) and the opaque "
        "`gradients` clip, scaled to the preset's canvas, timed to its limits, then down its quality ladder until "
        "it fits (`media/fit.py`). `the octree's own palettes`: today's fit with Pillow's fast octree drawing every "
        "palette, 32 and 16 colours too (not its 256 reduced by weighted k-means); `Pillow's APNG writer`: with the "
        "APNG written by Pillow (zlib) and the octree's own palettes, as until the evening of 2026-12-07; "
        "`Lanczos canvas`: today's fit with the canvas of before 2026-12-07; "
        "`before`: with the WebM, WebP and APNG encoders of before 2026-12-07 too, which wrote each rung whole. "
        "Median of "
        f"{report['preset_repeat']} fits after one. Error: levels per shown pixel and channel against the clip on "
        "the canvas that fit drew.",
        "",
        "| clip | preset | variant | ms | KB | error | what was fitted |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["presets"]:
        lines.append(
            f"| {r['clip']} | {r['preset']} | {r['variant']} | {r['ms']:.0f} | {r['kb']:.1f} | {r['error']:.2f} "
            f"| {r['fit']} |"
        )
    return "\n".join(lines) + "\n"


def one_core_options(doc: str, repeat: int) -> argparse.ArgumentParser:
    """A media benchmark's options: where its results go, the core it is pinned to, its runs per figure."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser


def report_head(benchmark: str, repeat: int) -> dict:
    return {
        "benchmark": benchmark,
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "repeat": repeat,
    }


def write_report(report: dict, stem: Path, markdown=markdown) -> None:
    """`stem`.json and `stem`.md (printed too)."""
    text = markdown(report)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> int:
    parser = one_core_options(__doc__, repeat=7)
    parser.add_argument("--suffix", default="", help="added to the results' file name: media-encode-DATE-SUFFIX")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    torch.set_num_threads(1)  # the canvas's kernels: one core, as the encoders
    cv2.setNumThreads(1)  # the sticker look's filters
    report = {
        **report_head("media encode", args.repeat),
        "rows": run(args.repeat),
        "canvas": run_canvas(args.repeat),
        "look": run_look(max(1, args.repeat // 2)),
        "preset_repeat": max(1, args.repeat // 2),
        "presets": run_presets(max(1, args.repeat // 2)),
    }
    write_report(report, args.out / "-".join(["media-encode", report["date"], *([args.suffix] if args.suffix else [])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
