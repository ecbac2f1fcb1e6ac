"""How a clip loops: as it is, there and back, or with its end faded into its start; and how visible the seam is."""

import numpy as np

from ..errors import MemeError

LOOPS = ("forward", "pingpong", "crossfade")
CROSSFADE_SHARE = 0.25  # of the frames: the tail that fades into the head


def make_loop(frames: np.ndarray, mode: str = "forward") -> np.ndarray:
    """`f h w c` uint8 frames (RGB or RGBA) arranged to loop as `mode` says.

    pingpong: the clip then back, without repeating either end (2f - 2 frames). crossfade: the last quarter
    blended into the first, so the clip's end leads into its start (f - k frames, k = f / 4)."""
    if mode not in LOOPS:
        raise MemeError(f"--loop {mode!r} is not a loop: use {', '.join(LOOPS)}")
    f = len(frames)
    if mode == "forward" or f < 3:
        return frames
    if mode == "pingpong":
        return np.concatenate([frames, frames[-2:0:-1]])
    k = max(1, round(f * CROSSFADE_SHARE))
    out = frames[: f - k].copy()
    weights = (np.arange(1, k + 1, dtype=np.float32) / (k + 1)).reshape(-1, 1, 1, 1)  # the head's share grows
    out[:k] = (weights * frames[:k] + (1 - weights) * frames[f - k :]).round().clip(0, 255)
    return out


def seam_score(frames: np.ndarray) -> float:
    """The jump from the last frame back to the first, against the mean step between frames: about 1 is as smooth
    as the rest of the clip, well above 1 a visible seam."""
    x = frames[..., :3].astype(np.float32)
    steps = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3))
    return float(np.abs(x[-1] - x[0]).mean() / max(float(steps.mean()), 1e-6))
