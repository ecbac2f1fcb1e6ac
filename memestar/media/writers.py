"""Encoding frames as GIF, MP4 (H.264, yuv420p) or animated WebP, to bytes or to files, within a size budget.

Files are written to a temporary name beside the target and renamed into place, so an interrupted
write never leaves a half file under the real name.
"""

import io
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import MemeError
from ..files import atomic_path

def _check_frames(frames: np.ndarray, alpha: bool = False) -> np.ndarray:
    """Frames as `f h w 3` uint8 (RGB), or `f h w 4` (RGBA) where the format carries transparency."""
    frames = np.asarray(frames)
    channels = (3, 4) if alpha else (3,)
    if frames.ndim != 4 or frames.shape[-1] not in channels or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty f h w {'3 or 4' if alpha else '3'} uint8 array, got "
                         f"{frames.dtype} {frames.shape}")
    return frames


TRANSPARENT_BELOW = 128  # GIF's 1-bit transparency: alpha under this is a hole


PALETTE_SAMPLE = 262_144  # pixels the palette is built from (a stride over the clip)


def shared_palette(frames: np.ndarray, colors: int = 256) -> Image.Image:
    """One palette for the whole clip, so a colour keeps its index and GIF frames do not flicker: the clip's own
    colours when it has no more than `colors` (flat memes, stickers: exact), else Pillow's fast octree over a
    sample. On 16 noise-like frames of 256 px the GIF takes 0.09 s where median cut over every pixel took 0.72 s
    (the largest stage of a GPU generation), with lower error after dithering (noise 12.6 against 12.9 levels
    per pixel, gradients 5.8 against 6.5, blocks 13.5 against 17.6)."""
    f, h, w, _ = frames.shape
    pixels = frames.reshape(-1, 3)[::max(1, f * h * w // PALETTE_SAMPLE)]
    packed = np.unique((pixels[:, 0].astype(np.uint32) << 16) | (pixels[:, 1].astype(np.uint32) << 8) | pixels[:, 2])
    if len(packed) <= colors:
        exact = np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1).astype(np.uint8)
        palette = Image.new("P", (1, 1))
        palette.putpalette(exact.tobytes())
        return palette
    side = int(np.ceil(np.sqrt(len(pixels))))
    sheet = np.zeros((side * side, 3), np.uint8)
    sheet[: len(pixels)] = pixels
    sheet[len(pixels):] = pixels[-1]
    return Image.fromarray(sheet.reshape(side, side, 3)).quantize(colors, method=Image.Quantize.FASTOCTREE,
                                                                   dither=Image.Dither.NONE)


def encode_gif(frames: np.ndarray, fps: float, colors: int = 256, dither: bool = True) -> bytes:
    """A looping GIF with one palette across all frames and Floyd-Steinberg dithering. RGBA frames get GIF's
    1-bit transparency: one palette entry is the hole, every frame cleared before the next (disposal 2)."""
    frames = _check_frames(frames, alpha=True)
    holes = frames[..., 3] < TRANSPARENT_BELOW if frames.shape[-1] == 4 else None
    rgb = np.ascontiguousarray(frames[..., :3])
    if holes is not None and not holes.any():
        holes = None
    if holes is None:
        palette = shared_palette(rgb, colors)
    else:
        opaque = rgb[~holes] if (~holes).any() else rgb.reshape(-1, 3)[:1]
        palette = shared_palette(opaque[None, None], colors - 1)  # 1 h w 3: the opaque pixels only
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    images = [Image.fromarray(f).quantize(palette=palette, dither=mode) for f in rgb]
    entries = bytes(palette.getpalette())
    options = {"disposal": 1}
    if holes is not None:
        hole = colors - 1
        entries = entries[:3 * hole].ljust(3 * hole, b"\0") + b"\0\0\0"
        for i, image in enumerate(images):
            index = np.asarray(image).copy()
            index[holes[i]] = hole
            images[i] = Image.fromarray(index, "P")
            images[i].putpalette(entries)
        options = {"disposal": 2, "transparency": hole}
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=round(1000 / fps), optimize=False, palette=entries,  # the global colour table
                   **options)
    return buffer.getvalue()


def encode_webp(frames: np.ndarray, fps: float, quality: int = 80) -> bytes:
    """Animated WebP, lossy, with its alpha channel where the frames are RGBA."""
    frames = _check_frames(frames, alpha=True)
    images = [Image.fromarray(f) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], loop=0,
                   duration=round(1000 / fps), quality=quality, method=4)
    return buffer.getvalue()


def encode_apng(frames: np.ndarray, fps: float, colors: int | None = None) -> bytes:
    """Animated PNG, lossless; `colors` quantises each frame (alpha included) to that many palette entries, which
    is how an APNG gets smaller. Each frame replaces the last (no blending over what was there)."""
    from PIL.PngImagePlugin import Blend, Disposal

    frames = _check_frames(frames, alpha=True)
    mode = {3: "RGB", 4: "RGBA"}[frames.shape[-1]]
    images = [Image.fromarray(f, mode) for f in frames]
    if colors is not None:
        images = [i.quantize(colors, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE) for i in images]
    buffer = io.BytesIO()
    images[0].save(buffer, format="PNG", save_all=True, append_images=images[1:], loop=0,
                   duration=round(1000 / fps), disposal=Disposal.OP_BACKGROUND, blend=Blend.OP_SOURCE,
                   default_image=False)
    return buffer.getvalue()


def _ffmpeg_bytes(frames: np.ndarray, fps: float, suffix: str, **write_frames) -> bytes:
    """`frames` through imageio-ffmpeg's bundled ffmpeg into a file of `suffix`, returned as bytes (the muxers
    want a seekable file, not a pipe). Only the video formats need ffmpeg; GIF, WebP and APNG are Pillow's."""
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


def encode_webm(frames: np.ndarray, fps: float, crf: int = 30) -> bytes:
    """VP9 in WebM, no audio, with its alpha channel (`yuva420p`, as Telegram's video stickers take it)."""
    frames = _check_frames(frames, alpha=True)
    if frames.shape[-1] == 3:
        frames = np.concatenate([frames, np.full(frames.shape[:3] + (1,), 255, np.uint8)], axis=-1)
    return _ffmpeg_bytes(frames, fps, ".webm", codec="libvpx-vp9", pix_fmt_in="rgba", pix_fmt_out="yuva420p",
                         macro_block_size=1, output_params=["-crf", str(crf), "-b:v", "0", "-auto-alt-ref", "0",
                                                            "-an", "-row-mt", "1"])


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """H.264 in yuv420p, which every phone plays; width and height must be even."""
    frames = _check_frames(frames)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 in yuv420p needs even width and height, got {w}x{h}")
    return _ffmpeg_bytes(frames, fps, ".mp4", codec="libx264", pix_fmt_out="yuv420p", macro_block_size=2,
                         output_params=["-crf", str(crf), "-movflags", "+faststart"])


ENCODERS = {"gif": encode_gif, "mp4": encode_mp4, "webp": encode_webp}
# What `fit_to_kb` gives up first, per format: the settings it tries at each size, best first.
QUALITY_LADDERS = {
    "gif": [{"colors": c} for c in (256, 128, 64, 32, 16)],
    "mp4": [{"crf": c} for c in (18, 23, 28, 33, 38, 43)],
    "webp": [{"quality": q} for q in (80, 60, 40, 20, 10)],
}


def media_format(path: str | Path, format: str | None = None) -> str:
    """The format named, else the one the file's suffix says."""
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in ENCODERS:
        raise MemeError(f"cannot tell the output format of {path}: use a .gif, .mp4 or .webp suffix or --format")
    return fmt


def encode_media(frames: np.ndarray, fmt: str, fps: float, **settings) -> bytes:
    return ENCODERS[fmt](frames, fps, **settings)


def resize_frames(frames: np.ndarray, side: int) -> np.ndarray:
    return np.stack([np.asarray(Image.fromarray(f).resize((side, side), Image.Resampling.LANCZOS)) for f in frames])


def fit_to_kb(frames: np.ndarray, fmt: str, fps: float, max_kb: float) -> tuple[bytes, str]:
    """The best encoding under `max_kb` KiB: lowers quality (colours for GIF) first, then the size.
    Returns the bytes and a sentence saying what was given up."""
    side = frames.shape[1]
    while True:
        scaled = frames if side == frames.shape[1] else resize_frames(frames, side)
        for settings in QUALITY_LADDERS[fmt]:
            data = encode_media(scaled, fmt, fps, **settings)
            if len(data) <= max_kb * 1024:
                what = ", ".join(f"{k} {v}" for k, v in settings.items())
                size = "" if side == frames.shape[1] else f", frames shrunk to {side}x{side}"
                return data, f"fitted {len(data) / 1024:.1f} KiB under {max_kb:g} KiB with {what}{size}"
        if side <= 32:
            raise MemeError(f"cannot fit the {fmt} under {max_kb:g} KiB even at {side}x{side} with the lowest "
                            f"quality ({len(data) / 1024:.1f} KiB): raise --max-kb")
        side = max(32, int(side * 0.75) // 2 * 2)


def write_bytes(data: bytes, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_gif(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_gif(frames, fps, **settings), path)


def write_webp(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_webp(frames, fps, **settings), path)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float, **settings) -> Path:
    return write_bytes(encode_mp4(frames, fps, **settings), path)


def write_media(frames: np.ndarray, path: str | Path, fps: float, format: str | None = None) -> Path:
    return write_bytes(encode_media(frames, media_format(path, format), fps), path)
