"""The baseline every figure is measured against: the meme run as a Tune-A-Video user runs it today.

fp32, eager, diffusers' `DDIMScheduler`, the prompt encoded on every call, classifier-free guidance as a
batch of two, all frames decoded at once, the GIF written by `imageio`. Same interface as the runtime
backends, so the bench times both with the same code.
"""

import io

import imageio.v2 as imageio
import torch
from diffusers import DDIMScheduler

from ..errors import MemeError
from ..formats.meme_folder import ADAPTER, MemeManifest
from ..models.adapter import load_adapter
from ..models.base import load_base
from ..models.text import encode_prompts
from ..models.vae import decode_pixels, encode_pixels, vae_scale_factor
from ..models.video_unet import VideoUNet
from ..runtime.backends.base import Backend
from ..sampling.guidance import guided_output


class EagerFP32Baseline(Backend):
    name = "baseline"

    def __init__(self, meme_folder, meme: MemeManifest, device: torch.device):
        self.device, self.dtype = device, torch.float32
        self.base = load_base(meme.base.reference, device=device, dtype=torch.float32)
        self.tokenizer = self.base.tokenizer
        self.scheduler_config, self.vae_scale = self.base.scheduler_config, vae_scale_factor(self.base.vae)
        self.video = VideoUNet(self.base.unet, **meme.layout)
        load_adapter(self.video, meme_folder / ADAPTER, self.base.reference, self.base.fingerprint)

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.base.tokenizer, self.base.text_encoder, prompts)

    @torch.no_grad()
    def denoise(self, x, t, text, guidance):
        return guided_output(self.video, x, t, text, guidance)

    @torch.no_grad()
    def sample(
        self,
        sampler: str,
        steps: int,
        x,
        text,
        guidance,
        follow=None,
        *,
        guidance_until: float = 0.0,
        cache_interval: int = 1,
        follow_measure: str = "latents",
        first_step: int = 0,
    ):
        if follow is not None or guidance_until or cache_interval != 1 or first_step:
            raise MemeError(
                "the eager baseline samples as Tune-A-Video does: every step whole and guided, no subject track"
            )
        scheduler = DDIMScheduler.from_config(self.base.scheduler_config)
        scheduler.set_timesteps(steps)
        for t in scheduler.timesteps:
            x = scheduler.step(self.denoise(x, t, text, guidance), t, x).prev_sample
        return x

    def encode_pixels(self, frames):
        return encode_pixels(self.base.vae, frames)

    def decode_pixels(self, latents):
        return decode_pixels(self.base.vae, latents)

    @staticmethod
    def encode_media(frames, fps: float) -> bytes:
        buffer = io.BytesIO()
        imageio.mimwrite(buffer, list(frames), format="GIF", duration=1000 / fps, loop=0)
        return buffer.getvalue()
