"""What the ONNX Runtime and TensorRT backends share: a meme's exported graphs run by name.

The export holds the tokenizer and noise schedule too, so these backends load no torch model and no
base: tokens -> `text_encoder`, the sampler loop on the host calling `unet` (guidance inside the graph),
`vae_decoder` -> frames rounded to uint8. A subclass only says how to run one graph (`_run`).
"""

import json
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from ..export_folder import SCHEDULER_JSON, TOKENIZER
from ..models.vae import to_uint8
from .backend import Schedules


class GraphBackend:
    name = "graphs"

    def __init__(self, export_folder: Path, manifest: dict, device: torch.device):
        self.folder, self.manifest, self.device = Path(export_folder), manifest, device
        self.tokenizer = CLIPTokenizer.from_pretrained(self.folder / TOKENIZER, local_files_only=True)
        self.scheduler_config = json.loads((self.folder / SCHEDULER_JSON).read_text())
        self.sampler = Schedules(self.scheduler_config, device)

    def _run(self, graph: str, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        return torch.cat([self._run("text_encoder", {"input_ids": row[None]}) for row in ids])  # static batch 1

    def denoise(self, x, t, text, guidance):
        if len(text) == len(x):  # no guidance: the graph's batch of two is the conditional text twice
            text, guidance = torch.cat([text, text]), 1.0
        t = torch.as_tensor(t, device=self.device).reshape(1).long()
        g = torch.tensor([guidance], dtype=torch.float32, device=self.device)
        return self._run("unet", {"latents": x.float(), "timestep": t, "text": text.float(), "guidance": g})

    def sample(self, sampler: str, steps: int, x: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        return self.sampler(sampler, steps).sample(x, lambda x, t: self.denoise(x, t, text, guidance))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return to_uint8(self._run("vae_decoder", {"latents": latents.float()}))[0].cpu()
