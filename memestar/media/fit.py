"""Fitting a clip into a chat app's preset: its canvas, timing, container and byte budget, or one line saying
which limit cannot be met.

canvas (bicubic to the preset's side, `resize.py`; the alpha channel scaled with the colour) -> timing (frames dropped
evenly where the clip is faster than the app's frame rate or longer than its duration) -> bytes: each rung of
the container's quality ladder (fewer colours, a higher CRF, a lower quality), then every other frame dropped
at half the rate (the same duration, the same motion) down to `MIN_FRAMES`. The canvas never changes.
"""

import math

import numpy as np

from ..errors import MemeError
from .presets import AppPreset
from .resize import resize_frames
from .writers import encode_apng, encode_gif, encode_webm, encode_webp, first_fit

MIN_FRAMES = 4  # fewer is no longer the clip's motion
PRESET_ENCODERS = {"webm": encode_webm, "webp": encode_webp, "gif": encode_gif, "apng": encode_apng}
# Each container's settings, best first: what fitting gives up before it drops frames.
PRESET_LADDERS = {
    "webm": [{"crf": c} for c in (30, 36, 42, 48, 56, 63)],
    "webp": [{"quality": q} for q in (80, 60, 40, 20, 5)],
    "gif": [{"colors": c} for c in (256, 128, 64, 32, 16)],
    "apng": [{"colors": c} for c in (None, 256, 128, 64, 32, 16)],  # None: lossless RGBA
}


def fit_timing(frames: np.ndarray, fps: float, preset: AppPreset) -> tuple[np.ndarray, float]:
    """Frames and rate within the preset's frame rate, shortest frame and duration: frames dropped evenly."""
    top = min(preset.max_fps or math.inf, 1000 / preset.min_frame_ms if preset.min_frame_ms else math.inf)
    if fps > top:
        keep = np.unique(np.floor(np.arange(0, len(frames), fps / top)).astype(int))
        frames, fps = frames[keep], fps * len(keep) / len(frames)
    if preset.max_duration_s is not None and len(frames) / fps > preset.max_duration_s:
        count = max(MIN_FRAMES, int(preset.max_duration_s * fps))
        if count / fps > preset.max_duration_s:
            raise MemeError(
                f"the clip cannot be made {preset.max_duration_s:g} s long for {preset.name} with "
                f"{MIN_FRAMES} frames at {fps:g} fps or more"
            )
        frames = frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]
    return frames, fps


def fit_to_preset(frames: np.ndarray, fps: float, preset: AppPreset, nearest: bool = False) -> tuple[bytes, str]:
    """The clip as `preset`'s file, and a sentence saying what was given up to fit it. A rung that cannot fit is
    given up as soon as its encoder passes the budget (`writers.first_fit`)."""
    frames = resize_frames(frames, preset.side, nearest)
    frames, fps = fit_timing(frames, fps, preset)
    encode, ladder = PRESET_ENCODERS[preset.container], PRESET_LADDERS[preset.container]
    while True:
        fitted = first_fit(encode, frames, fps, ladder, preset.max_bytes)
        if fitted is not None:
            data, settings = fitted
            what = ", ".join(f"{k} {v}" for k, v in settings.items()) or "lossless"
            return data, (
                f"{preset.name}: {preset.side}x{preset.side}, {len(frames)} frames at {fps:g} fps, "
                f"{len(data) / 1000:.1f} KB of {preset.budget} ({what})"
            )
        if len(frames) // 2 < MIN_FRAMES:
            smallest = len(encode(frames, fps, **ladder[-1]))
            raise MemeError(
                f"cannot fit the clip into {preset.name}'s {preset.budget}: {smallest / 1000:.1f} KB at "
                f"the lowest quality with {len(frames)} frames; use fewer frames or a simpler style"
            )
        frames, fps = frames[::2], fps / 2
