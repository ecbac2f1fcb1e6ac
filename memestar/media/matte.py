"""Sticker mode: a transparent background cut from the clip itself, stable across frames, with a white outline.

The memes are drawn on plain backgrounds (the sticker style asks SD for one), so the background is the colour
of the frames' borders. An edge pixel is a blend of subject and background, so its alpha is its distance from
the background colour over the largest distance nearby (the subject's own), where that stands clear of the
border's noise; a pixel whose distance barely changes between frames keeps the mean of its neighbours' alphas
(edges that move are left alone), so a still subject does not flicker; holes the background colour leaves inside
the subject are filled, and alpha near 0 or 1 snaps to it. On the tiny world (`benchmarks/sticker_matte.py`):
mean IoU 0.94 to 0.98 against the renderer's matte over 40 random subjects per motion and noise level. The
outline is the matte grown by `outline` pixels, painted white under the subject, as the apps recommend (WhatsApp:
8 px at 512).
"""

import numpy as np
from PIL import Image, ImageFilter

RAMP = 24.0  # levels of RGB distance from fully background to fully subject
MIN_THRESHOLD = 12.0  # the ramp starts at least this far from the background colour
SNAP = 0.1  # alpha this close to 0 or 1 becomes 0 or 1: no faint haze on the background, a solid subject
OWN_ALPHA_SHARE = 0.01  # an image whose alpha is below 250 in this share of its pixels is cut out already
OUTLINE_COLOUR = (255, 255, 255)


def has_own_alpha(rgba: np.ndarray) -> bool:
    """Whether an RGBA image `(h, w, 4)` is a cut-out already (a sticker, a PNG with a transparent background)."""
    return bool((rgba[..., 3] < 250).mean() >= OWN_ALPHA_SHARE)


def background_colour(frames: np.ndarray) -> np.ndarray:
    """The median colour of every frame's border, `(3,)` float."""
    b = max(1, frames.shape[1] // 32)
    border = np.concatenate(
        [
            frames[:, :b].reshape(-1, 3),
            frames[:, -b:].reshape(-1, 3),
            frames[:, :, :b].reshape(-1, 3),
            frames[:, :, -b:].reshape(-1, 3),
        ]
    )
    return np.median(border.astype(np.float32), axis=0)


def matte(frames: np.ndarray) -> np.ndarray:
    """`f h w 3` uint8 -> alpha `f h w` float32 in [0, 1]: 1 on the subject, 0 on the background."""
    levels = np.arange(256, dtype=np.float32)
    squares = [(levels - c) ** 2 for c in background_colour(frames)]  # each channel's (level - background)^2
    distance = np.take(squares[0], frames[..., 0]) + np.take(squares[1], frames[..., 1])
    distance = np.sqrt(distance + np.take(squares[2], frames[..., 2]))  # f h w
    b = max(1, frames.shape[1] // 32)
    border = np.concatenate(
        [distance[:, :b].ravel(), distance[:, -b:].ravel(), distance[:, :, :b].ravel(), distance[:, :, -b:].ravel()]
    )
    start = max(MIN_THRESHOLD, 1.5 * float(np.percentile(border, 90)))
    # An edge pixel is a blend a * subject + (1 - a) * background, so its distance is a times the subject's: the
    # subject's is the largest distance nearby. Where nothing nearby stands clear of the noise, alpha is 0.
    nearby = grow_float(distance, 2)
    alpha = np.clip(distance / np.maximum(nearby, 1e-6), 0, 1) * np.clip((nearby - start) / RAMP, 0, 1)
    alpha[distance < start / 2] = 0
    if len(frames) > 2:  # where a pixel did not change, it takes its neighbours' mean: no flicker on still parts
        before, after = np.roll(distance, 1, 0), np.roll(distance, -1, 0)
        still = (np.abs(distance - before) < start) & (np.abs(distance - after) < start)
        mean = (np.roll(alpha, 1, 0) + alpha + np.roll(alpha, -1, 0)) / 3
        alpha = np.where(still, mean, alpha)
    alpha = median3((alpha * 255).astype(np.uint8)).astype(np.float32) / 255  # specks of noise out
    alpha[fill_holes(alpha > 0.5) & (alpha <= 0.5)] = 1  # background that does not reach the border
    alpha[alpha < SNAP] = 0
    alpha[alpha > 1 - SNAP] = 1
    return alpha


def with_matte(frames: np.ndarray) -> np.ndarray:
    """`f h w 3` -> `f h w 4` uint8: the frames with their background cut away."""
    alpha = (matte(frames) * 255).round().astype(np.uint8)
    return np.concatenate([frames, alpha[..., None]], axis=-1)


# The filters below are OpenCV's, frame by frame (imported on first use: only stickers need it): the same results
# as numpy's shifted maxima, Pillow's median and scipy's hole filling, each 8 to 25 times sooner; the matte of 16
# frames of 256 px in 35 ms against 155 on one core (benchmarks/results/media-encode-2026-12-07-opencv.md).


def median3(alpha: np.ndarray) -> np.ndarray:
    """`alpha` (f h w uint8), each pixel the median of its 3x3 square (the border repeated)."""
    import cv2

    return np.stack([cv2.medianBlur(a, 3) for a in alpha])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """`mask` (f h w bool) with what it encloses set: each frame's background that no 4-connected path of it links
    to the border."""
    import cv2

    out = []
    for m in mask:
        padded = np.pad(m.astype(np.uint8), 1)  # a ring of background around the frame: one seed reaches all of it
        cv2.floodFill(padded, None, (0, 0), 2, flags=4)
        out.append(padded[1:-1, 1:-1] != 2)
    return np.stack(out)


def grow_float(x: np.ndarray, width: int) -> np.ndarray:
    """`x` (f h w float32) with each value the largest within `width` pixels (a square)."""
    import cv2

    square = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return np.stack([cv2.dilate(f, square) for f in x])


def grow(alpha: np.ndarray, width: int) -> np.ndarray:
    """`alpha` (f h w uint8) grown by `width` pixels: steps of a 3x3 square and a 3x3 cross in turn, an octagon
    close to a disc (a square kernel would give square corners; OpenCV's 'ellipse' has spikes)."""
    import cv2

    square, cross = np.ones((3, 3), np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    out = []
    for a in alpha:
        for step in range(width):
            a = cv2.dilate(a, square if step % 2 == 0 else cross)  # the square's corners on every other step
        out.append(a)
    return np.stack(out)


def paint_under(frames: np.ndarray, colour=OUTLINE_COLOUR) -> np.ndarray:
    """RGBA frames over `colour`: their colour where opaque, `colour` where transparent, the blend of both at the
    edge; the alpha as it was. Scaled after this, colour and alpha can resample alike (`resize.py`)."""
    import cv2

    out = np.empty_like(frames)
    under = np.full((*frames.shape[1:3], 3), colour, np.uint8)
    for frame, painted in zip(frames, out):
        weight = frame[..., 3].astype(np.float32) / 255
        painted[..., :3] = cv2.blendLinear(np.ascontiguousarray(frame[..., :3]), under, weight, 1 - weight)
    out[..., 3] = frames[..., 3]
    return out


def add_outline(frames: np.ndarray, width: int) -> np.ndarray:
    """RGBA frames with a `width`-pixel outline around the subject, in the colour painted under it (`paint_under`):
    the alpha grown."""
    if width < 1:
        return frames
    out = frames.copy()
    out[..., 3] = grow(np.ascontiguousarray(frames[..., 3]), width)
    return out


def outline_width(side: int) -> int:
    """The apps' recommended outline at this canvas: 8 px at 512, at least 1."""
    return max(1, round(8 * side / 512))


def add_shadow(frames: np.ndarray, side: int) -> np.ndarray:
    """RGBA frames over a soft drop shadow of their own matte: offset down and right by 1/64 of the canvas, blurred
    as much, at 45% black; the subject and its outline stay as they were."""
    offset = max(1, side // 64)
    out = []
    for f in frames:
        shadow = Image.new("L", (f.shape[1], f.shape[0]), 0)
        shadow.paste(Image.fromarray(f[..., 3]), (offset, offset))
        shade = np.asarray(shadow.filter(ImageFilter.GaussianBlur(offset)), np.float32) / 255 * 0.45
        alpha = f[..., 3:].astype(np.float32) / 255
        total = alpha[..., 0] + shade * (1 - alpha[..., 0])  # the subject over its shadow
        rgb = f[..., :3] * alpha / np.maximum(total, 1e-6)[..., None]  # black shadow: only the subject's colour
        out.append(np.concatenate([rgb.round(), (total * 255).round()[..., None]], -1).clip(0, 255).astype(np.uint8))
    return np.stack(out)
