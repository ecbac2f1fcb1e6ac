"""The latents a generation starts from, made of the meme's stored inversion and a seed's noise.

`mix_start` blends the two whole (MotionDirector's noise prior): what the seed's noise adds and what the inversion
keeps are spread over every scale, so the subject's place frame by frame weakens as its look frees up.
`layout_start` splits them by scale instead (FreeInit's noise reinitialisation, in space only): the inversion's low
spatial frequencies, where the subject is in each frame, and the seed's noise for the fine detail, its shape. No
temporal filtering: the coarse layout of every frame, and so the motion, comes from the inversion.
"""

import math

import torch

BUTTERWORTH_ORDER = 4  # FreeInit's: a steep fall from the pass band to the stop band, with less ringing than a hard cut


def mix_start(inversion: torch.Tensor, noise: torch.Tensor, variation: float) -> torch.Tensor:
    """`sqrt(1 - v) * inversion + sqrt(v) * noise`: a share `v` of the variance from the noise."""
    return math.sqrt(1 - variation) * inversion + math.sqrt(variation) * noise


def spatial_lowpass(h: int, w: int, cutoff: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """`(h, w)` Butterworth low-pass in FFT order, 0.5 at `cutoff` (in units of the Nyquist frequency)."""
    fy = torch.fft.fftfreq(h, device=device)[:, None] * 2  # -1 .. 1 of Nyquist
    fx = torch.fft.fftfreq(w, device=device)[None, :] * 2
    radius = (fx**2 + fy**2).sqrt()
    return 1 / (1 + (radius / cutoff) ** (2 * BUTTERWORTH_ORDER))


def layout_start(inversion: torch.Tensor, noise: torch.Tensor, variation: float) -> torch.Tensor:
    """`(n, c, f, h, w)`: each frame's spatial spectrum below `1 - variation` of Nyquist from the inversion, above it
    from the noise (0 keeps the inversion, 1 is the noise)."""
    if variation <= 0:
        return inversion
    if variation >= 1:
        return noise
    lowpass = spatial_lowpass(*inversion.shape[-2:], 1 - variation, inversion.device)
    spectrum = torch.fft.fft2(inversion) * lowpass + torch.fft.fft2(noise) * (1 - lowpass)  # over h, w of each frame
    return torch.fft.ifft2(spectrum).real
