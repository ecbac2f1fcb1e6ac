"""Reading a 64x64 frame of the tiny world back: the subject's colour, shape, centroid and size.

Analytic: the subject is the largest connected blob of pixels far from the border's colour; its colour is
the named colour nearest its median RGB; its shape comes from two rotation-invariant measures:
- solidity (area / convex-hull area): a star is far from convex (about 0.6), the others near 1;
- fill of the circumscribed circle (area / (pi r_max^2), r_max the farthest pixel from the centroid):
  circle about 1, square 2/pi = 0.64, triangle 0.41.
"""

from collections import deque
from dataclasses import dataclass

import numpy as np

from .world import COLOURS

FOREGROUND_DISTANCE = 60  # RGB distance from the background that makes a pixel part of a subject
MIN_AREA = 6


@dataclass
class Reading:
    colour: str | None
    shape: str | None
    x: float  # centroid, pixels
    y: float
    size: float  # sqrt(area), pixels
    area: int
    blobs: int  # subject-sized blobs seen (a second one means a second subject)


def _blobs(mask: np.ndarray) -> list[np.ndarray]:
    """Connected components (4-neighbourhood) of a boolean mask, as arrays of (row, col), largest first."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    blobs = []
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        seen[r0, c0] = True
        queue, pixels = deque([(r0, c0)]), []
        while queue:
            r, c = queue.popleft()
            pixels.append((r, c))
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    queue.append((rr, cc))
        blobs.append(np.array(pixels))
    return sorted(blobs, key=len, reverse=True)


def _hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of pixel squares (each pixel's four corners), by the monotone chain."""
    corners = np.concatenate([points + d for d in ((0, 0), (0, 1), (1, 0), (1, 1))]).astype(float)
    pts = sorted(set(map(tuple, corners)))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(points):
        chain = []
        for p in points:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    x, y = np.array(hull).T
    return 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))


def nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    distances = [np.linalg.norm(rgb - np.array(COLOURS[n])) for n in names]
    return names[int(np.argmin(distances))]


def classify_shape(pixels: np.ndarray) -> str:
    area = len(pixels)
    centre = pixels.mean(axis=0) + 0.5
    r_max = np.sqrt(((pixels + 0.5 - centre) ** 2).sum(axis=1)).max() + 0.5
    solidity = area / max(_hull_area(pixels), 1.0)
    fill = area / (np.pi * r_max**2)
    if solidity < 0.8:
        return "star"
    if fill > 0.8:
        return "circle"
    if fill > 0.52:
        return "square"
    return "triangle"


def read_frame(frame: np.ndarray) -> Reading:
    """What the frame shows; colour and shape are None when no subject is found."""
    frame = frame.astype(np.int32)
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
    background = np.median(border, axis=0)
    mask = np.linalg.norm(frame - background, axis=-1) > FOREGROUND_DISTANCE
    blobs = [b for b in _blobs(mask) if len(b) >= MIN_AREA]
    if not blobs:
        return Reading(None, None, float("nan"), float("nan"), 0.0, 0, 0)
    pixels = blobs[0]
    rgb = np.median(frame[pixels[:, 0], pixels[:, 1]], axis=0)
    y, x = pixels.mean(axis=0) + 0.5
    big_enough = [b for b in blobs if len(b) >= max(MIN_AREA, 0.25 * len(pixels))]
    return Reading(
        nearest_colour(rgb),
        classify_shape(pixels),
        float(x),
        float(y),
        float(np.sqrt(len(pixels))),
        len(pixels),
        len(big_enough),
    )


def read_clip_frames(frames: np.ndarray) -> list[Reading]:
    return [read_frame(f) for f in frames]
