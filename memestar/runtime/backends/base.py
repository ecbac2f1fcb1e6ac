"""What a runtime backend does: encode prompts, denoise (one step or the whole loop), decode latents.

The torch backend is the reference; the ONNX Runtime and TensorRT backends (`GraphBackend`) run a meme's
exported graphs behind the same methods, and the bench's eager fp32 baseline too. Every backend takes and
returns the same shapes and dtypes, whatever it computes in:

- text embeddings: `(n, L, d)` fp32 on the backend's device (L: the tokenizer's length, d: the encoder's width);
- latents: `(n, c, f, h, w)` fp32 on the backend's device, n clips sampled together (a batch);
- the text a step is conditioned on: `(2n, L, d)` as (n unconditional, then n conditional) with guidance, or the
  n conditional embeddings alone `(n, L, d)` with no guidance;
- guidance: one scale for the batch, or one per clip `(n,)`; 1 with `(n, L, d)` text means no guidance;
- frames: `(n, f, H, W, 3)` uint8 on the CPU (`decode`), or fp32 in [0, 255] on the device (`decode_pixels`);
- a subject track to follow (`sampling/follow.py`): `(n, f, 3)` fp32 on the device, or None.
- frames to encode (`encode_pixels`, an animated still's start): `(n, f, H, W, 3)` uint8 on the CPU.
Each clip of a batch comes out as it would alone (within rounding). What no guidance costs differs: see
`unet_passes`.

The loop's work savers, the same for every clip of a batch (`sample`'s keywords; their defaults are the plain
loop, `GenSettings` holds the product's): guidance only while the timestep is at or above `guidance_until` of
training's (`sampling/guidance.py`), the UNet's deep features reused for `cache_interval - 1` steps after each full
one (`sampling/deep_cache.py`; the torch backend only: the exported UNet graph is whole), where a followed
subject is measured (`follow_measure`: on the latents, or on their decoded frames), and the step the loop starts
from (`first_step`: an animated still's latents enter part-way, `sampling/plan.first_step`).
"""

from abc import ABC, abstractmethod

import torch

from ...errors import MemeError
from ...models.vae import to_uint8
from ...sampling.follow import following, latent_subject_track, subject_track
from ...sampling.plan import loop_plan


class Backend(ABC):
    name: str
    device: torch.device
    tokenizer: object  # the base's CLIPTokenizer (prompt length, truncation notes)
    scheduler_config: dict  # the base's noise schedule
    vae_scale: int  # pixels per latent cell along a side
    caches_deep_features = False  # whether `cache_interval` saves work here (else every step is whole)

    @abstractmethod
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """`(len(prompts), L, d)` fp32 text embeddings on the device."""

    @abstractmethod
    def denoise(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, guidance) -> torch.Tensor:
        """The (guided) model output for latents `x` `(n, c, f, h, w)` fp32 at timestep `t`; the same shape, fp32.
        `text` is `(2n, L, d)` (unconditional, conditional) with guidance, or `(n, L, d)` with guidance 1."""

    @abstractmethod
    def sample(
        self,
        sampler: str,
        steps: int,
        x: torch.Tensor,
        text: torch.Tensor,
        guidance,
        follow: torch.Tensor | None = None,
        *,
        guidance_until: float = 0.0,
        cache_interval: int = 1,
        follow_measure: str = "latents",
        first_step: int = 0,
    ) -> torch.Tensor:
        """The denoising loop from start latents `x` `(n, c, f, h, w)` at step `first_step` (0: pure noise, the whole
        loop): clean latents, the same shape, fp32. With `follow`, each clip's subject is held on that track
        (`sampling/follow.py`)."""

    @abstractmethod
    def encode_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames `(n, f, H, W, 3)` -> their latents `(n, c, f, h, w)` fp32 on the device (the VAE posterior's
        mean, scaled as the UNet takes it)."""

    def add_token(self, token: str, embedding: torch.Tensor) -> None:
        """`token` as a word of the text encoder, `embedding` `(d,)` its row (a learned subject)."""
        raise MemeError(f"the {self.name} backend takes no learned subjects ({token}): use --backend torch, ort or trt")

    @abstractmethod
    def decode_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents `(n, c, f, h, w)` -> fp32 frames `(n, f, H, W, 3)` in [0, 255], not rounded, on the device."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents `(n, c, f, h, w)` -> uint8 frames `(n, f, H, W, 3)` on the CPU."""
        return to_uint8(self.decode_pixels(latents)).cpu()

    def step_plan(
        self, schedule, guided: bool, guidance_until: float = 0.0, cache_interval: int = 1, first_step: int = 0
    ) -> list[tuple[bool, str | None]]:
        """`loop_plan` of `schedule`'s steps from `first_step` on this backend (cache mode None on backends that do
        not cache)."""
        return loop_plan(
            schedule.timestep_list[first_step:],
            self.scheduler_config,
            guided,
            guidance_until,
            cache_interval if self.caches_deep_features else 1,
        )

    def subject_measure(self, follow_measure: str):
        """`measure(x0)` -> `(n, f, 3)`: where the subject is in predicted clean latents `(n, c, f, h, w)`, on the
        latents themselves or on their decoded frames."""
        if follow_measure == "pixels":
            return lambda x0: subject_track(self.decode_pixels(x0))
        if follow_measure == "latents":
            return lambda x0: latent_subject_track(x0, self.vae_scale)
        raise ValueError(f"unknown follow measure {follow_measure!r}")

    def following(
        self, model_fn, follow: torch.Tensor | None, schedule, follow_measure: str = "latents", first_step: int = 0
    ):
        """`model_fn(x, t)` for one run of `schedule` from `first_step`, holding each clip's subject on `follow`
        `(n, f, 3)`; as it is without one."""
        if follow is None:
            return model_fn
        return following(
            model_fn,
            self.subject_measure(follow_measure),
            follow,
            self.scheduler_config,
            schedule.timestep_list[first_step:],
        )

    def unet_passes(self, guided: bool) -> int:
        """UNet evaluations (of one clip) per denoising step: 2 with guidance (one batch of two); without it, 1
        where the backend can drop the unconditional half, as here, 2 where it cannot (the exported graphs)."""
        return 2 if guided else 1
