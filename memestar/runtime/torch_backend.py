"""The torch backend: fp16/bf16, channels-last and a CUDA graph of the whole denoising loop on GPU; fp32 on CPU.

On a GPU the loop for one (sampler, steps, shape) is captured once as a CUDA graph: later calls copy the
new start latents, text embeddings and guidance scale into its static inputs and replay it, with no
Python or kernel-launch work per step. Optional `torch.compile` of the UNet.
"""

import sys
from collections import OrderedDict

import torch

from ..models.base import BaseModel
from ..models.guidance import guided_output
from ..models.text import encode_prompts
from ..models.vae import decode_latents
from ..models.video_unet import VideoUNet
from .backend import Backend, Schedules


MAX_GRAPHS = 4  # captured loops kept (e.g. two step counts, with and without guidance)


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, base: BaseModel, video: VideoUNet, device: torch.device, dtype: torch.dtype,
                 cuda_graphs: bool = True, compile: bool = False):
        self.base, self.video, self.device, self.dtype = base, video, device, dtype
        self.cuda_graphs = cuda_graphs and device.type == "cuda"
        if device.type == "cuda":
            video.unet.to(memory_format=torch.channels_last)
            base.vae.to(memory_format=torch.channels_last)
        if compile:
            video.unet = torch.compile(video.unet, dynamic=False)
        self.guidance = torch.ones((), device=device)  # a tensor, so a captured graph reads the current value
        self.sampler = Schedules(base.scheduler_config, device)
        self._graphs = OrderedDict()  # most recently used last; each holds its own memory pool

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @torch.inference_mode()
    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        return encode_prompts(self.base.tokenizer, self.base.text_encoder, prompts).float()

    def _model_fn(self, text: torch.Tensor):
        text = text.to(self.dtype)  # once per loop: the UNet runs in the compute precision

        def model_fn(x, t):
            return guided_output(lambda x, t, e: self.video(x.to(self.dtype), t, e).float(), x, t, text,
                                 self.guidance)
        return model_fn

    @torch.inference_mode()
    def denoise(self, x, t, text, guidance):
        self.guidance.fill_(guidance)
        return self._model_fn(text)(x, t)

    @torch.inference_mode()
    def sample(self, sampler: str, steps: int, x: torch.Tensor, text: torch.Tensor, guidance: float) -> torch.Tensor:
        self.guidance.fill_(guidance)
        schedule = self.sampler(sampler, steps)
        if not self.cuda_graphs:
            return schedule.sample(x, self._model_fn(text))
        key = (sampler, steps, tuple(x.shape), tuple(text.shape))
        if key in self._graphs:
            self._graphs.move_to_end(key)
        else:
            captured = self._capture(schedule, x, text)
            if captured is None:
                return schedule.sample(x, self._model_fn(text))
            while len(self._graphs) >= MAX_GRAPHS:
                self._graphs.popitem(last=False)
            self._graphs[key] = captured
        graph, static_x, static_text, static_out = self._graphs[key]
        static_x.copy_(x)
        static_text.copy_(text)
        graph.replay()
        return static_out.clone()

    def _capture(self, schedule, x, text):
        static_x, static_text = x.clone(), text.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: allocator pools, cuDNN/cuBLAS plans
            schedule.sample(static_x.clone(), self._model_fn(static_text))
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = schedule.sample(static_x, self._model_fn(static_text))
        except RuntimeError as e:  # e.g. a compiled UNet whose kernels cannot be captured
            print(f"note: the denoising loop cannot be captured as a CUDA graph ({str(e).splitlines()[0]}); "
                  f"running it step by step", file=sys.stderr)
            self.cuda_graphs = False
            return None
        return graph, static_x, static_text, static_out

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return decode_latents(self.base.vae, latents)[0].cpu()
