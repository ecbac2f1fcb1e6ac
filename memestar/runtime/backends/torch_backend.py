"""The torch backend: fp16/bf16, channels-last and a CUDA graph of the whole denoising loop on GPU; fp32 on CPU.

On a GPU the loop for one (sampler, steps, shape, batch bucket) is captured once as a CUDA graph: later calls
copy the new start latents, text embeddings and guidance scales into its static inputs and replay it, with no
Python or kernel-launch work per step (following a subject track, the measures and warps of the steps it follows
are in the graph too). A batch of n clips runs in the graph of the smallest bucket (1, 2, 4, 8)
that holds it, padded with copies of its first clip, so four captures serve every batch size up to 8. The steps
past `guidance_until` run the conditional half alone; with `cache_interval` above 1 the UNet's deep features are
reused between steps (`sampling/deep_cache.py`). Optional `torch.compile` of the UNet, cached on disk
(`compile_cache.py`).
"""

import sys
from collections import OrderedDict

import torch

from ...models.base import BaseModel
from ...models.text import add_token, encode_prompts
from ...models.vae import decode_pixels, encode_pixels, vae_scale_factor
from ...models.video_unet import VideoUNet
from ...sampling.batch import bucket, padded
from ...sampling.deep_cache import DeepCache
from ...sampling.guidance import guided_output
from ...sampling.plan import Schedules, guidance_scales
from .base import Backend
from .compile_cache import compile_unet

MAX_GRAPHS = 8  # captured loops kept (e.g. the four buckets, with and without guidance)


class TorchBackend(Backend):
    name = "torch"
    caches_deep_features = True

    def __init__(
        self,
        base: BaseModel,
        video: VideoUNet,
        device: torch.device,
        dtype: torch.dtype,
        cuda_graphs: bool = True,
        compile: bool = False,
    ):
        self.base, self.video, self.device, self.dtype = base, video, device, dtype
        self.scheduler_config, self.vae_scale = base.scheduler_config, vae_scale_factor(base.vae)
        self.deep_cache = DeepCache(video.unet)
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        if device.type == "cuda":
            video.unet.to(memory_format=torch.channels_last)
            base.vae.to(memory_format=torch.channels_last)
        if compile:
            compile_unet(video.unet)
        self.sampler = Schedules(base.scheduler_config, device)
        self._graphs = OrderedDict()  # most recently used last; each holds its own memory pool

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.base.tokenizer, self.base.text_encoder, prompts).float()

    @torch.inference_mode()
    def add_token(self, token: str, embedding: torch.Tensor) -> None:
        row = add_token(self.base.tokenizer, self.base.text_encoder, token)
        table = self.base.text_encoder.get_input_embeddings().weight
        table[row] = embedding.to(table.device, table.dtype)

    def _model_fn(self, text: torch.Tensor, guidance: torch.Tensor, plan: list[tuple[bool, str | None]]):
        """`model_fn(x, t)` for one run of a loop whose steps follow `plan` (guided or not, deep-cache mode), one
        entry per call."""
        text = text.to(self.dtype)  # once per loop: the UNet runs in the compute precision
        conditional = text.chunk(2)[1] if len(text) != len(guidance) else text  # n L d
        steps = iter(plan)

        def unet(x, t, e):
            return self.video(x.to(self.dtype), t, e).float()

        def model_fn(x, t):
            guided, cache = next(steps)
            with self.deep_cache.mode(cache):
                return guided_output(unet, x, t, text if guided else conditional, guidance)

        return model_fn

    @torch.inference_mode()
    def denoise(self, x, t, text, guidance):
        return self._model_fn(text, guidance_scales(guidance, len(x), self.device), [(len(text) != len(x), None)])(x, t)

    def _loop(self, schedule, plan, follow_measure, first_step, x, text, scales, track=None):
        """The denoising loop from `first_step` (following `track` when given): what a CUDA graph captures."""
        model_fn = self.following(self._model_fn(text, scales, plan), track, schedule, follow_measure, first_step)
        return schedule.sample(x, model_fn, first=first_step)

    @torch.inference_mode()
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
        n, guided = len(x), len(text) != len(x)
        scales = guidance_scales(guidance, n, self.device)
        schedule = self.sampler(sampler, steps)
        plan = self.step_plan(schedule, guided, guidance_until, cache_interval, first_step)
        loop = (schedule, plan, follow_measure, first_step)
        if not self.cuda_graphs:
            return self._loop(*loop, x, text, scales, follow)
        rows = bucket(n)
        text = torch.cat([padded(half, rows) for half in text.chunk(2)]) if guided else padded(text, rows)
        inputs = (padded(x, rows), text, padded(scales, rows)) + (() if follow is None else (padded(follow, rows),))
        key = (
            sampler,
            steps,
            tuple(inputs[0].shape),
            tuple(text.shape),
            tuple(plan),
            follow_measure if follow is not None else None,
            first_step,
        )
        if key in self._graphs:
            self._graphs.move_to_end(key)
        else:
            captured = self._capture(loop, inputs)
            if captured is None:
                return self._loop(*loop, *inputs)[:n]
            while len(self._graphs) >= MAX_GRAPHS:
                self._graphs.popitem(last=False)
            self._graphs[key] = captured
        graph, static_inputs, static_out = self._graphs[key]
        for static, new in zip(static_inputs, inputs, strict=True):
            static.copy_(new)
        graph.replay()
        return static_out[:n].clone()

    def _capture(self, loop, inputs):
        static = tuple(t.clone() for t in inputs)  # start latents, text, guidance scales (, subject track)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: allocator pools, cuDNN/cuBLAS plans
            self._loop(*loop, static[0].clone(), *static[1:])
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = self._loop(*loop, *static)
        except RuntimeError as e:  # e.g. a compiled UNet whose kernels cannot be captured
            print(
                f"note: the denoising loop cannot be captured as a CUDA graph ({str(e).splitlines()[0]}); "
                f"running it step by step",
                file=sys.stderr,
            )
            self.cuda_graphs = False
            return None
        return graph, static, static_out

    @torch.inference_mode()
    def encode_pixels(self, frames: torch.Tensor) -> torch.Tensor:
        return encode_pixels(self.base.vae, frames)

    @torch.inference_mode()
    def decode_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_pixels(self.base.vae, latents)
