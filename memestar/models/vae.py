"""Frames to VAE latents and back, all frames of a clip in one batch (chunked to bound memory)."""

import torch
from diffusers import AutoencoderKL


def vae_scale_factor(vae: AutoencoderKL) -> int:
    """Pixels per latent cell along a side: 8 for SD, 4 for the bundled tiny model."""
    return 2 ** (len(vae.config.block_out_channels) - 1)


@torch.no_grad()
def encode_pixels(vae: AutoencoderKL, pixels: torch.Tensor, chunk: int | None = 16) -> torch.Tensor:
    """Frames `b f h w 3` in [0, 255] (uint8, or fp32 as the exported encoder takes them) -> scaled latents
    `b c f h/s w/s` fp32 (the posterior mean; s = `vae_scale_factor`), `chunk` frames per encoder call (None: all
    in one)."""
    b, f = pixels.shape[:2]
    x = pixels.to(vae.device).flatten(0, 1).permute(0, 3, 1, 2).to(vae.dtype) / 127.5 - 1  # (b f) 3 h w in [-1, 1]
    parts = [x] if chunk is None else x.split(chunk)
    z = torch.cat([vae.encode(part).latent_dist.mean for part in parts]) * vae.config.scaling_factor  # (b f) c h w
    return z.float().reshape(b, f, *z.shape[1:]).transpose(1, 2)  # b c f h w


def encode_frames(vae: AutoencoderKL, frames: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """uint8 frames `f h w 3` of one clip -> scaled latents `1 c f h/s w/s` fp32 (`encode_pixels`)."""
    return encode_pixels(vae, frames[None], chunk)


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
