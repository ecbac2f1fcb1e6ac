"""What a runtime backend does: encode prompts, denoise (one step or the whole loop), decode latents.

The torch backend is the reference; the ONNX Runtime and TensorRT backends (`GraphBackend`) run a meme's
exported graphs behind the same methods.
"""

from typing import Protocol

import torch
from transformers import CLIPTokenizer

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


class Backend(Protocol):
    name: str
    device: torch.device
    tokenizer: CLIPTokenizer

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """(n, 77, d) text embeddings."""

    def denoise(self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        """The guided model output for latents `x` (1 c f h w, fp32); `text` is (uncond, cond) or (cond,)."""

    def sample(self, sampler: str, steps: int, x: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        """The whole denoising loop from `x`."""

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (1 c f h w) -> uint8 frames (f h w 3) on the CPU."""
