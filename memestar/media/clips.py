"""Reading a clip into `n` square uint8 frames, streamed so a long 4K clip never sits whole in memory.

Videos (mp4, webm, mov, mkv, avi) go through imageio-ffmpeg's bundled ffmpeg, which crops and scales
before the frames reach Python; GIFs and WebPs through Pillow, frame by frame, on their display timeline (a
frame stored once with a long delay counts as the frames it stands for); a folder of PNG/JPEG frames is read
in name order, opening only the frames chosen. Every file is opened through `source.py`, which holds what it
declares (canvas, frames, display time, decoded pixels) to the caps before a frame is decoded.
"""

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import MAX_FPS, MIN_FPS, check_frames, check_size
from ..errors import MemeError
from .source import check_declared, decode_video, frame_durations_ms, open_image, video_header

VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ANIMATED_IMAGE_SUFFIXES = (".gif", ".webp")
CLIP_HELP = "a video (mp4, webm, mov), a GIF or WebP, or a folder of PNG/JPEG frames"

# imageio-ffmpeg warns on every read that ffmpeg's scaled output differs from the source size.
logging.getLogger("imageio_ffmpeg").setLevel(logging.ERROR)


@dataclass
class Clip:
    frames: np.ndarray  # f h w 3, uint8
    fps: float  # of the chosen frames
    source_frames: int
    indices: list[int]


def frame_indices(total: int, n: int, start: int = 0, stride: int | None = None) -> list[int]:
    """`n` frame numbers from `start`: every `stride`-th, or spread evenly over the rest of the clip."""
    if n < 1:
        raise MemeError(f"asked for {n} frames: ask for at least 1")
    if start < 0 or (stride is not None and stride < 1):
        raise MemeError("the start frame must be >= 0 and the stride >= 1")
    if stride is None:
        available = total - start
        if available < n:
            raise MemeError(
                f"the clip has {total} frames ({max(available, 0)} from frame {start}), fewer than "
                f"the {n} asked: ask for fewer frames or an earlier start"
            )
        return [start + i * available // n for i in range(n)]
    last = start + (n - 1) * stride
    if last >= total:
        raise MemeError(
            f"the clip has {total} frames, but {n} frames from {start} with stride {stride} need "
            f"{last + 1}: ask for fewer frames, a smaller stride or an earlier start"
        )
    return [start + i * stride for i in range(n)]


def read_clip(path: str | Path, n: int, size: int, start: int = 0, stride: int | None = None) -> Clip:
    """Reads `n` frames of the clip at `path`, centre-cropped to a square and resized to `size`."""
    path = Path(path)
    check_size(size)
    check_frames(n)
    if not path.exists():
        raise MemeError(f"clip {path} not found: pass {CLIP_HELP}")
    if path.is_dir():
        return _read_folder(path, n, size, start, stride)
    if path.stat().st_size == 0:
        raise MemeError(f"clip {path} is an empty file: pass {CLIP_HELP}")
    suffix = path.suffix.lower()
    if suffix in ANIMATED_IMAGE_SUFFIXES:
        return _read_animated_image(path, n, size, start, stride)
    if suffix in VIDEO_SUFFIXES:
        return _read_video(path, n, size, start, stride)
    raise MemeError(f"clip {path} has an unknown suffix {suffix or '(none)'}: pass {CLIP_HELP}")


def square(image: Image.Image, size: int) -> np.ndarray:
    """Centre crop to a square, then resize (area-averaging when shrinking)."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.convert("RGB").crop((left, top, left + side, top + side))
    if side != size:
        image = image.resize((size, size), Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def _read_folder(folder: Path, n: int, size: int, start: int, stride: int | None) -> Clip:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise MemeError(f"folder {folder} holds no PNG or JPEG frames: pass {CLIP_HELP}")
    indices = frame_indices(len(files), n, start, stride)
    frames = []
    for i in indices:
        with open_image(files[i], "a PNG or JPEG frame") as im:
            frames.append(square(im, size))
    return Clip(np.stack(frames), _fps(24.0, indices), len(files), indices)


def timeline(durations: list[int]) -> list[int]:
    """The stored frame shown at each tick of the shortest duration: an encoder that stores a repeated frame once
    with a longer delay (Pillow, gifsicle) plays it for several ticks, and the clip keeps its timing. Its length is
    bounded: the display time is capped and the tick is over 10 ms."""
    tick = min(durations)
    return [i for i, d in enumerate(durations) for _ in range(max(1, round(d / tick)))]


def _read_animated_image(path: Path, n: int, size: int, start: int, stride: int | None) -> Clip:
    by_stored = {}
    with open_image(path, f"a {path.suffix[1:].upper()}") as im:
        # as browsers play it: a missing delay, or one of 10 ms or less, is 100 ms
        durations = [d if d > 10 else 100 for d in frame_durations_ms(im)]
        check_declared(path.name, im.width, im.height, len(durations), sum(durations) / 1000)
        shown = timeline(durations)
        indices = frame_indices(len(shown), n, start, stride)
        for i in sorted({shown[i] for i in indices}):  # stored frame numbers, ascending
            im.seek(i)
            by_stored[i] = square(im, size)
    frames = [by_stored[shown[i]] for i in indices]
    return Clip(np.stack(frames), _fps(1000.0 / min(durations), indices), len(shown), indices)


def _read_video(path: Path, n: int, size: int, start: int, stride: int | None) -> Clip:
    import imageio_ffmpeg  # only videos need ffmpeg

    header = video_header(path)
    total = decode_video(path, header, strict=False)  # counts the frames, and reports a damaged file as damaged
    indices = frame_indices(total, n, start, stride)
    crop_scale = f"crop='min(iw,ih)':'min(iw,ih)',scale={size}:{size}:flags=area"
    reader = imageio_ffmpeg.read_frames(str(path), output_params=["-vf", crop_scale])
    frames, wanted, decoded = [], set(indices), 0
    try:
        meta = next(reader)
        for i, raw in enumerate(reader):
            decoded = i + 1
            if i in wanted:
                frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(size, size, 3).copy())
                if len(frames) == len(indices):
                    break
    except (RuntimeError, OSError) as e:
        raise MemeError(f"clip {path} could not be decoded: {str(e).splitlines()[0]}") from e
    finally:
        reader.close()
    if len(frames) < len(indices):
        raise MemeError(
            f"clip {path} ended after {decoded} frames, before frame {indices[len(frames)]}: ask for fewer frames"
        )
    return Clip(np.stack(frames), _fps(meta.get("fps") or 24.0, indices), total, indices)


def _fps(source_fps: float, indices: list[int]) -> float:
    """The frame rate of the chosen frames, within what a GIF can play."""
    step = (indices[-1] - indices[0]) / (len(indices) - 1) if len(indices) > 1 else 1
    fps = float(source_fps) / max(step, 1)
    return min(max(fps, MIN_FPS), MAX_FPS) if math.isfinite(fps) else 24.0
