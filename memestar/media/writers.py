"""Writing frames as GIF, MP4 (H.264, yuv420p) or animated WebP, atomically.

Every writer encodes to a temporary name beside the target and renames it into place, so an
interrupted write never leaves a half file under the real name.
"""

from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

from ..errors import MemeError
from ..files import atomic_path

FORMATS = ("gif", "mp4", "webp")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty f h w 3 uint8 array, got {frames.dtype} {frames.shape}")
    return frames


def shared_palette(frames: np.ndarray, colors: int = 256) -> Image.Image:
    """One palette for the whole clip, so a colour keeps its index and GIF frames do not flicker."""
    f, h, w, _ = frames.shape
    every = max(1, f * h * w // 1_000_000)  # palette from at most ~1 M pixels
    pixels = frames.reshape(-1, 3)[::every]
    side = int(np.ceil(np.sqrt(len(pixels))))
    sheet = np.zeros((side * side, 3), np.uint8)
    sheet[: len(pixels)] = pixels
    sheet[len(pixels):] = pixels[-1]
    return Image.fromarray(sheet.reshape(side, side, 3)).quantize(colors, method=Image.Quantize.MEDIANCUT,
                                                                   dither=Image.Dither.NONE)


def write_gif(frames: np.ndarray, path: str | Path, fps: float, colors: int = 256, dither: bool = True) -> Path:
    """A looping GIF with one palette across all frames and Floyd-Steinberg dithering."""
    frames, path = _check_frames(frames), Path(path)
    palette = shared_palette(frames, colors)
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    images = [Image.fromarray(f).quantize(palette=palette, dither=mode) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=round(1000 / fps), optimize=False, disposal=1,
                       palette=bytes(palette.getpalette()))  # written once, as the global colour table
    return path


def write_webp(frames: np.ndarray, path: str | Path, fps: float, quality: int = 80) -> Path:
    frames, path = _check_frames(frames), Path(path)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="WEBP", save_all=True, append_images=images[1:], loop=0,
                       duration=round(1000 / fps), quality=quality, method=4)
    return path


def write_mp4(frames: np.ndarray, path: str | Path, fps: float, crf: int = 18) -> Path:
    """H.264 in yuv420p, which every phone plays; width and height must be even."""
    frames, path = _check_frames(frames), Path(path)
    h, w = frames.shape[1:3]
    if h % 2 or w % 2:
        raise ValueError(f"H.264 in yuv420p needs even width and height, got {w}x{h}")
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(str(tmp), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                             quality=None, macro_block_size=2,
                                             output_params=["-crf", str(crf), "-movflags", "+faststart"])
        writer.send(None)
        for f in frames:
            writer.send(np.ascontiguousarray(f))
        writer.close()
    return path


WRITERS = {"gif": write_gif, "mp4": write_mp4, "webp": write_webp}


def media_format(path: str | Path, format: str | None = None) -> str:
    """The format named, else the one the file's suffix says."""
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    if fmt not in WRITERS:
        raise MemeError(f"cannot tell the output format of {path}: use a .gif, .mp4 or .webp suffix or --format")
    return fmt


def write_media(frames: np.ndarray, path: str | Path, fps: float, format: str | None = None) -> Path:
    return WRITERS[media_format(path, format)](frames, path, fps)
