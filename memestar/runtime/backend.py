"""What a runtime backend does: encode prompts, denoise (one step or the whole loop), decode latents.

The torch backend is the reference; the ONNX Runtime and TensorRT backends (`GraphBackend`) run a meme's
exported graphs behind the same methods, and the bench's eager fp32 baseline too. Every backend takes and
returns the same shapes and dtypes, whatever it computes in:

- text embeddings: `(n, L, d)` fp32 on the backend's device (L: the tokenizer's length, d: the encoder's width);
- latents: `(1, c, f, h, w)` fp32 on the backend's device, one clip (batch 1);
- the text a step is conditioned on: `(2, L, d)` as (unconditional, conditional) with guidance > 1, or the
  conditional embedding alone `(1, L, d)` with guidance 1 ("no guidance");
- frames: `(f, H, W, 3)` uint8 on the CPU.
What no guidance costs differs: see `unet_passes`.
"""

from abc import ABC, abstractmethod

import torch

from ..schedulers.ddim import DDIMSchedule
from ..schedulers.dpm_solver import DPMSolverPP2M

SAMPLERS = {"ddim": DDIMSchedule, "dpm++": DPMSolverPP2M}


class Schedules:
    """A backend's sampler schedules by (kind, steps): built once on its device, then reused."""

    def __init__(self, scheduler_config: dict, device: torch.device):
        self.config, self.device, self._built = scheduler_config, device, {}

    def __call__(self, kind: str, steps: int):
        if (kind, steps) not in self._built:
            self._built[kind, steps] = SAMPLERS[kind](self.config, steps, self.device)
        return self._built[kind, steps]


class Backend(ABC):
    name: str
    device: torch.device
    tokenizer: object  # the base's CLIPTokenizer (prompt length, truncation notes)

    @abstractmethod
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """`(len(prompts), L, d)` fp32 text embeddings on the device."""

    @abstractmethod
    def denoise(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        """The (guided) model output for latents `x` `(1, c, f, h, w)` fp32 at timestep `t`; the same shape, fp32.
        `text` is `(2, L, d)` (unconditional, conditional) with `guidance` > 1, or `(1, L, d)` with guidance 1."""

    @abstractmethod
    def sample(self, sampler: str, steps: int, x: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        """The whole denoising loop from start latents `x`: clean latents, the same shape, fp32."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents `(1, c, f, h, w)` -> uint8 frames `(f, H, W, 3)` on the CPU."""

    def unet_passes(self, guided: bool) -> int:
        """UNet evaluations (of one clip) per denoising step: 2 with guidance (one batch of two); without it, 1
        where the backend can drop the unconditional half, as here, 2 where it cannot (the exported graphs)."""
        return 2 if guided else 1
