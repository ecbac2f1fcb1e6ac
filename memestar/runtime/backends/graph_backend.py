"""What the ONNX Runtime and TensorRT backends share: a meme's exported graphs run by their specs.

The export holds the tokenizer and noise schedule too, so these backends load no torch model and no base: tokens
(with the rows of the learned subjects a prompt names) -> `text_encoder`, the sampler loop on the host calling
`unet` (guidance inside the graph; following a subject track calls `vae_decoder` in the loop too), `vae_decoder` ->
frames rounded to uint8; an animated still's frames -> `vae_encoder`. A subclass only says how to run one graph on a
batch (`_run`). A batch of clips runs through the UNet together, up to the export's `max_batch` at a time; prompts
are encoded and clips decoded one at a time, as the torch backend does (a batched decoder would need the memory of
every frame at once for a few percent of the time).
"""

import json
from abc import abstractmethod
from pathlib import Path

import torch
from transformers import CLIPTokenizer

from ...checks import MAX_LEARNED_PER_PROMPT
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
        # each graph's inputs as the export holds them (an older export's text encoder takes the ids alone)
        self.inputs = {
            name: GRAPH_SPECS[name].inputs_named([t.name for t in graph.inputs])
            for name, graph in manifest.graphs.items()
        }
        self.learned: dict[int, torch.Tensor] = {}  # the tokenizer's id of a learned subject's token -> its row (d,)

    @abstractmethod
    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """Runs one graph on `feeds` (named as `spec.inputs`, batched ones holding n rows); its output for the n,
        fp32 on the device."""

    def _call(self, graph: str, *tensors: torch.Tensor) -> torch.Tensor:
        n = len(tensors[0])
        feeds = {
            t.name: x.to(self.device, t.dtype).reshape(t.shape(self.manifest.shapes, n))
            for t, x in zip(self.inputs[graph], tensors, strict=True)
        }
        return self._run(GRAPH_SPECS[graph], feeds, n)

    @property
    def takes_learned(self) -> bool:
        """Whether the export's text encoder takes learned rows (an export made before them takes the ids alone)."""
        return len(self.inputs[TEXT_ENCODER]) > 1

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
        if not self.takes_learned:
            return torch.cat([self._call(TEXT_ENCODER, row[None]) for row in ids])
        return torch.cat([self._call(TEXT_ENCODER, *self._with_learned(row)) for row in ids])

    def _with_learned(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt's ids `(L,)` as the text encoder graph takes them, `(1, L)`, with its learned rows `(1, K, d)`:
        the k-th learned subject it names is id `vocab_size + k`, its row `learned[0, k]`."""
        shapes = self.manifest.shapes
        learned = torch.zeros(1, MAX_LEARNED_PER_PROMPT, shapes.text_width)
        named = [i for i in dict.fromkeys(ids.tolist()) if i in self.learned]
        if len(named) > MAX_LEARNED_PER_PROMPT:
            raise MemeError(
                f"the prompt names {len(named)} learned subjects: one prompt takes at most {MAX_LEARNED_PER_PROMPT}"
            )
        ids = ids.clone()
        for k, token_id in enumerate(named):
            ids[ids == token_id] = shapes.vocab_size + k
            learned[0, k] = self.learned[token_id]
        return ids[None], learned

    def add_token(self, token: str, embedding: torch.Tensor) -> None:
        if not self.takes_learned:
            raise MemeError(
                f"export {self.folder} was made before learned subjects ran on exports ({token}): run `meme export "
                f"MEME --force`, or use --backend torch"
            )
        if embedding.shape != (self.manifest.shapes.text_width,):
            raise MemeError(
                f"learned subject {token} is {tuple(embedding.shape)} wide, this export's text is "
                f"{self.manifest.shapes.text_width}: learn it on the meme's base"
            )
        if token not in self.tokenizer.get_vocab():
            self.tokenizer.add_tokens([token])
        self.learned[self.tokenizer.convert_tokens_to_ids(token)] = embedding.detach().float().cpu()

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
