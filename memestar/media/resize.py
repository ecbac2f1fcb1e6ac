"""Clips scaled to a square canvas: bicubic with antialiasing through torch's vectorised uint8 kernels, or
nearest-neighbour for pixel art.

Colour and alpha resample alike (not premultiplied): RGBA frames are expected to carry, where they are
transparent, the colour they will be seen over, as the sticker look paints the outline's colour under its subject
(`matte.paint_under`) before scaling; such frames come out as a premultiplied resample composited over that colour
would, but for rounding. 16 RGBA frames from 256 to 512 px take about 5 ms on one core where Pillow's Lanczos took
114, and a 2x round trip (box down, then up) of the benchmark's contents lands as close to the original or closer
(`benchmarks/media_encode.py`: media-encode-2026-12-07-canvas).
"""

import numpy as np
from PIL import Image


def resize_frames(frames: np.ndarray, side: int, nearest: bool = False) -> np.ndarray:
    """`f h w c` uint8 frames (RGB or RGBA) scaled to `side x side`."""
    if frames.shape[1:3] == (side, side):
        return frames
    if nearest:
        mode = {3: "RGB", 4: "RGBA"}[frames.shape[-1]]
        how = Image.Resampling.NEAREST
        return np.stack([np.asarray(Image.fromarray(f, mode).resize((side, side), how)) for f in frames])
    import torch  # the media stage loads without torch (`meme check`) until a clip is scaled
    import torch.nn.functional as F

    pixels = torch.from_numpy(np.require(frames, requirements=["C", "W"])).permute(0, 3, 1, 2)  # f c h w, channels last
    scaled = F.interpolate(pixels, size=(side, side), mode="bicubic", antialias=True)
    return np.ascontiguousarray(scaled.permute(0, 2, 3, 1).numpy())  # f h w c
