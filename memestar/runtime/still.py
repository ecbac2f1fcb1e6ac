"""A still to animate (`meme gen --image`): read under the caps, its subject cut out, and placed on a meme's subject
track frame by frame: the frames an animated still starts from (`meme.py` noises and denoises them).

The subject is the still's own alpha where it has one (a sticker, a cut-out PNG); else, on a plain background, the
sticker matte (`media/matte.py`); else (a photo with no plain background) the whole still. In each frame it is scaled so
that the side of a square of its opaque area is the track's size, its opaque centroid on the track's centroid, over
the meme's background colour.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..checks import MAX_STILL_BYTES
from ..errors import MemeError
from ..media.matte import has_own_alpha, matte
from ..media.source import open_image
from ..sampling.follow import plain_background

MIN_SUBJECT_PIXELS = 16  # fewer opaque pixels than this is no subject
# A still is worked at most this many pixels on its longer side: a subject on a track is rarely wider than half a
# 256-px frame, and cutting a 4096-px photo out takes 26 s on this CPU (1024 px: 1.4 s; 512 px: 0.3 s)
WORK_SIDE = 512


def read_still(path: Path, data: bytes | None = None) -> np.ndarray:
    """The still at `path` (or in `data`, an upload `path` names), as RGBA `(h, w, 4)` uint8: its first frame if it is
    animated. Over `MAX_STILL_BYTES`, over the canvas cap or unreadable: one line naming it."""
    size = len(data) if data is not None else path.stat().st_size if path.is_file() else None
    if size is None:
        raise MemeError(f"{path.name} not found: give the photo's path")
    if size > MAX_STILL_BYTES:
        raise MemeError(
            f"{path.name} is {size / 2**20:.1f} MiB, over the cap of {MAX_STILL_BYTES / 2**20:g} MiB for a still: "
            f"scale it down or save it as JPEG first"
        )
    with open_image(path, "an image", data) as image:
        image.seek(0)
        return np.asarray(image.convert("RGBA"))


def cut_out(still: np.ndarray, name: str = "the still") -> np.ndarray:
    """RGBA `(h, w, 4)` -> its subject: RGBA cropped to what is opaque, with its alpha (see the module's docstring),
    from the still at most `WORK_SIDE` pixels on its longer side."""
    if max(still.shape[:2]) > WORK_SIDE:
        small = Image.fromarray(still, "RGBA")
        small.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.LANCZOS)  # Pillow premultiplies alpha: no halo
        still = np.asarray(small)
    rgb, alpha = still[..., :3], still[..., 3]
    if not has_own_alpha(still):
        if plain_background(torch.from_numpy(np.ascontiguousarray(rgb))[None]):
            alpha = (matte(rgb[None])[0] * 255).round().astype(np.uint8)
        else:
            alpha = np.full_like(alpha, 255)
    rows, cols = np.nonzero(alpha > 0)
    if (alpha.astype(np.float32).sum() / 255) < MIN_SUBJECT_PIXELS:
        raise MemeError(
            f"{name} shows no subject to cut out (all of it is background): give a photo of one subject, on a plain "
            f"background or cut out with a transparent one"
        )
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    return np.concatenate([rgb[box], alpha[box][..., None]], axis=-1)


def place_along_track(subject: np.ndarray, track: np.ndarray, background: np.ndarray, side: int) -> np.ndarray:
    """The RGBA `subject` on `background` (RGB) in every frame of `track` `(f, 3)` (centroid x, y and size in
    half-widths of the frame, `sampling/follow.py`) -> `(f, side, side, 3)` uint8."""
    image = Image.fromarray(subject, "RGBA")
    own_size = np.sqrt(np.asarray(image.getchannel("A"), np.float32).sum() / 255)
    canvas = Image.new("RGB", (side, side), tuple(int(round(float(c))) for c in background))
    frames = []
    for x, y, size in track:
        scale = size * (side - 1) / 2 / own_size
        small = image.resize(
            (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS
        )
        alpha = np.asarray(small.getchannel("A"), np.float32) + 1e-6
        cy = (alpha.sum(1) * np.arange(small.height)).sum() / alpha.sum()
        cx = (alpha.sum(0) * np.arange(small.width)).sum() / alpha.sum()
        frame = canvas.copy()
        frame.paste(small, (round((x + 1) * (side - 1) / 2 - cx), round((y + 1) * (side - 1) / 2 - cy)), small)
        frames.append(np.asarray(frame))
    return np.stack(frames)
