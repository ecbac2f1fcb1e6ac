"""Frames to VAE latents and back, all frames of a clip in one batch (chunked to bound memory)."""

import torch
from diffusers import AutoencoderKL


def vae_scale_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along a side: 8 for SD, 4 for the bundled tiny model."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_frames(vae: AutoencoderKL, frames: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """uint8 frames `f h w 3` -> scaled latents `1 c f h/s w/s` (the posterior mean; s = `vae_scale_factor`)."""
    x = frames.to(vae.device).permute(0, 3, 1, 2).to(vae.dtype) / 127.5 - 1  # f 3 h w in [-1, 1]
    latents = torch.cat([vae.encode(x[i : i + chunk]).latent_dist.mean for i in range(0, len(x), chunk)])
    return (latents * vae.config.scaling_factor).transpose(0, 1)[None]  # 1 c f h w


@torch.no_grad()
def decode_pixels(vae: AutoencoderKL, latents: torch.Tensor, chunk: int | None = 16) -> torch.Tensor:
    """Latents `b c f h w` -> fp32 frames `b f h w 3` in [0, 255], not yet rounded (the exported decoder's output),
    `chunk` frames per decoder call (None: all in one)."""
    b, c, f, h, w = latents.shape
    z = latents.transpose(1, 2).reshape(b * f, c, h, w).to(vae.dtype) / vae.config.scaling_factor  # (b f) c h w
    if chunk is None:
        x = vae.decode(z).sample
    else:
        x = torch.cat([vae.decode(z[i : i + chunk]).sample for i in range(0, len(z), chunk)])
    x = ((x.float() + 1) * 127.5).clamp(0, 255)
    return x.permute(0, 2, 3, 1).reshape(b, f, *x.shape[2:], 3)  # b f h w 3


def to_uint8(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.round().clamp(0, 255).to(torch.uint8)


def decode_latents(vae: AutoencoderKL, latents: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Latents `b c f h w` -> uint8 frames `b f h w 3`."""
    return to_uint8(decode_pixels(vae, latents, chunk))
