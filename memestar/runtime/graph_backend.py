"""What the ONNX Runtime and TensorRT backends share: a meme's exported graphs run by their specs.

The export holds the tokenizer and noise schedule too, so these backends load no torch model and no
base: tokens -> `text_encoder`, the sampler loop on the host calling `unet` (guidance inside the graph),
`vae_decoder` -> frames rounded to uint8. A subclass only says how to run one graph (`_run`). The graphs take one
clip: a batch runs clip by clip.
"""

import json
from abc import abstractmethod
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from ..errors import MemeError
from ..export_folder import SCHEDULER_JSON, TOKENIZER, ExportManifest
from ..models.graphs import GRAPH_SPECS, TEXT_ENCODER, UNET, VAE_DECODER, GraphSpec
from ..models.vae import to_uint8
from .backend import Backend, Schedules, guidance_scales


class GraphBackend(Backend):
    name = "graphs"

    def __init__(self, export_folder: Path, manifest: ExportManifest, device: torch.device):
        self.folder, self.manifest, self.device = Path(export_folder), manifest, device
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(self.folder / TOKENIZER, local_files_only=True)
            self.scheduler_config = json.loads((self.folder / SCHEDULER_JSON).read_text())
        except (OSError, ValueError) as e:
            raise MemeError(f"export {self.folder} is damaged ({str(e).splitlines()[0]}): run `meme export MEME "
                            f"--force`") from e
        self.sampler = Schedules(self.scheduler_config, device)

    @abstractmethod
    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        """Runs one graph on `feeds` (named as `spec.inputs`); its output, fp32 on the device."""

    def _call(self, graph: str, *tensors: torch.Tensor) -> torch.Tensor:
        spec = GRAPH_SPECS[graph]
        feeds = {t.name: x.to(self.device, t.dtype).reshape(t.shape(self.manifest.shapes))
                 for t, x in zip(spec.inputs, tensors, strict=True)}
        return self._run(spec, feeds)

    def unet_passes(self, guided: bool) -> int:
        return 2  # the exported UNet is a fixed batch of two: no guidance runs the conditional text twice

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids
        return torch.cat([self._call(TEXT_ENCODER, row[None]) for row in ids])  # static batch 1

    def denoise(self, x, t, text, guidance):
        if len(text) == len(x):  # no guidance: the graph's batch of two is the conditional text twice
            text, guidance = torch.cat([text, text]), 1.0
        return self._call(UNET, x, torch.as_tensor(t), text, torch.tensor([guidance]))

    def sample(self, sampler: str, steps: int, x: torch.Tensor, text: torch.Tensor, guidance) -> torch.Tensor:
        n, schedule = len(x), self.sampler(sampler, steps)
        scales = guidance_scales(guidance, n, torch.device("cpu")).tolist()
        rows = [text[[i, n + i]] if len(text) == 2 * n else text[i:i + 1] for i in range(n)]
        return torch.cat([schedule.sample(x[i:i + 1], lambda z, t, e=rows[i], g=scales[i]: self.denoise(z, t, e, g))
                          for i in range(n)])

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([to_uint8(self._call(VAE_DECODER, z[None])).cpu() for z in latents])
