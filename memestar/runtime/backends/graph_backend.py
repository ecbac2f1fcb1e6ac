"""What the ONNX Runtime and TensorRT backends share: a meme's exported graphs run by their specs.

The export holds the tokenizer and noise schedule too, so these backends load no torch model and no
base: tokens -> `text_encoder`, the sampler loop on the host calling `unet` (guidance inside the graph;
following a subject track calls `vae_decoder` in the loop too), `vae_decoder` -> frames rounded to uint8; an
animated still's frames -> `vae_encoder`. A
subclass only says how to run one graph on a batch (`_run`). A batch of clips runs through the UNet together, up
to the export's `max_batch` at a time; prompts are encoded and clips decoded one at a time, as the torch backend
does (a batched decoder would need the memory of every frame at once for a few percent of the time).
"""

import json
from abc import abstractmethod
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from ...errors import MemeError
from ...formats.export_folder import SCHEDULER_JSON, TOKENIZER, ExportManifest
from ...models.graphs import GRAPH_SPECS, TEXT_ENCODER, UNET, VAE_DECODER, VAE_ENCODER, GraphSpec
from ...sampling.plan import Schedules, guidance_scales
from .base import Backend


class GraphBackend(Backend):
    name = "graphs"

    def __init__(self, export_folder: Path, manifest: ExportManifest, device: torch.device):
        self.folder, self.manifest, self.device = Path(export_folder), manifest, device
        try:
            self.tokenizer = CLIPTokenizer.from_pretrained(self.folder / TOKENIZER, local_files_only=True)
            self.scheduler_config = json.loads((self.folder / SCHEDULER_JSON).read_text())
        except (OSError, ValueError) as e:
            raise MemeError(
                f"export {self.folder} is damaged ({str(e).splitlines()[0]}): run `meme export MEME --force`"
            ) from e
        self.sampler = Schedules(self.scheduler_config, device)
        self.vae_scale = manifest.shapes.pixel_side // manifest.shapes.latent_side

    @abstractmethod
    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """Runs one graph on `feeds` (named as `spec.inputs`, batched ones holding n rows); its output for the n,
        fp32 on the device."""

    def _call(self, graph: str, *tensors: torch.Tensor) -> torch.Tensor:
        spec, n = GRAPH_SPECS[graph], len(tensors[0])
        feeds = {
            t.name: x.to(self.device, t.dtype).reshape(t.shape(self.manifest.shapes, n))
            for t, x in zip(spec.inputs, tensors, strict=True)
        }
        return self._run(spec, feeds, n)

    @property
    def max_batch(self) -> int:
        return self.manifest.built_from.max_batch

    def unet_passes(self, guided: bool) -> int:
        return 2  # the exported UNet always guides: no guidance runs the conditional text twice

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        return torch.cat([self._call(TEXT_ENCODER, row[None]) for row in ids])

    @staticmethod
    def _pairs(text: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The UNet graph's text `(n, 2, L, d)` (unconditional, conditional per clip) and guidance `(n,)` from the
        backends' `(2n, L, d)` or, with no guidance, `(n, L, d)` (the conditional text twice, guidance 1)."""
        if len(text) == len(scales):
            return torch.stack([text, text], 1), torch.ones_like(scales)
        return torch.stack(text.chunk(2), 1), scales  # n 2 L d

    def denoise(self, x, t, text, guidance):
        pairs, scales = self._pairs(text, guidance_scales(guidance, len(x), self.device))
        return self._call(UNET, x, torch.as_tensor(t), pairs, scales)

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
        schedule = self.sampler(sampler, steps)
        pairs, scales = self._pairs(text, guidance_scales(guidance, len(x), self.device))
        plan = self.step_plan(schedule, len(text) != len(x), guidance_until, cache_interval, first_step)
        out = []
        for k in range(0, len(x), self.max_batch):
            rows = slice(k, k + self.max_batch)
            steps = iter(plan)

            def unet(z, t, e=pairs[rows], g=scales[rows]):
                guided, _ = next(steps)
                return self._call(UNET, z, torch.as_tensor(t), e, g if guided else torch.ones_like(g))

            track = None if follow is None else follow[rows]
            model_fn = self.following(unet, track, schedule, follow_measure, first_step)
            out.append(schedule.sample(x[rows], model_fn, first=first_step))
        return torch.cat(out)

    def encode_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        if VAE_ENCODER not in self.manifest.graphs:
            raise MemeError(
                f"export {self.folder} has no VAE encoder, which animating a still needs (it was made before "
                f"meme-star animated stills): run `meme export MEME --force`, or use --backend torch"
            )
        return torch.cat([self._call(VAE_ENCODER, clip[None].float()) for clip in frames])

    def decode_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.cat([self._call(VAE_DECODER, z[None]) for z in latents])
