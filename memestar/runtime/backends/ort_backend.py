"""The ONNX Runtime backend: a meme's exported graphs on the CPU provider, or CUDA/TensorRT providers with IO
binding on a GPU (with `onnxruntime-gpu`, the `gpu` extra), so tensors stay on the device between steps.

A graph the runtime runs at one batch size only gets a session with its batch axis pinned to it, which ONNX
Runtime optimises as a static graph. On a CPU that includes the UNet: a batch runs clip by clip there, since a
step of the pinned graph is about 12% faster than the dynamic one at one clip and the 2-core CPU gains nothing
measurable from batching (`benchmarks/export_batch.py`). On a GPU the UNet keeps its dynamic axis and a batch
runs in one call."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ...errors import MemeError
from ...formats.export_folder import ExportManifest
from ...graph_runtimes import cuda_provider, ort_session
from ...models.graphs import GRAPHS, UNET, GraphSpec
from .graph_backend import GraphBackend

NUMPY_DTYPES = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}


def providers_for(device: torch.device, export_folder: Path) -> list:
    """CPU here; on a GPU the CUDA provider (TF32 off, like the self-check), after the TensorRT provider where
    TensorRT itself is installed (FP16, its engines cached beside the export)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MemeError(
            '--backend ort needs ONNX Runtime: pip install "meme-star[onnx]" (or [gpu] on NVIDIA GPUs)'
        ) from e
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise MemeError(
            'this ONNX Runtime has no CUDA provider: pip install "meme-star[gpu]" (onnxruntime-gpu), '
            "or run --backend ort with --device cpu"
        )
    providers = [cuda_provider(device), "CPUExecutionProvider"]
    if "TensorrtExecutionProvider" in available and importlib.util.find_spec("tensorrt"):
        cache = str(export_folder / "ort-trt-cache")
        providers.insert(
            0,
            (
                "TensorrtExecutionProvider",
                {
                    "device_id": device.index or 0,
                    "trt_fp16_enable": True,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": True,
                    "trt_timing_cache_path": cache,
                },
            ),
        )
    return providers


class OrtBackend(GraphBackend):
    name = "ort"

    def __init__(self, export_folder: Path, manifest: ExportManifest, device: torch.device):
        super().__init__(export_folder, manifest, device)
        providers = providers_for(device, self.folder)
        self.pinned = {
            spec.name: 1 if device.type == "cpu" else spec.buckets[0] if len(spec.buckets) == 1 else None
            for spec in GRAPHS
            if spec.name in manifest.graphs
        }
        try:
            self.sessions = {
                spec.name: ort_session(
                    self.folder / manifest.graphs[spec.name].file, providers, batch=self.pinned[spec.name]
                )
                for spec in GRAPHS
                if spec.name in manifest.graphs
            }
        except Exception as e:  # onnxruntime raises its own kinds for a damaged or foreign file
            raise MemeError(
                f"ONNX Runtime cannot load the export {self.folder} ({str(e).splitlines()[0]}): "
                f"run `meme export MEME --force`"
            ) from e

    @property
    def max_batch(self) -> int:
        return self.pinned[UNET] or super().max_batch

    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        session = self.sessions[spec.name]
        if self.device.type == "cpu":
            return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in feeds.items()})[0])
        binding, index = session.io_binding(), self.device.index or 0
        feeds = {k: v.contiguous() for k, v in feeds.items()}  # alive until the run ends: ORT reads their memory
        for name, tensor in feeds.items():
            binding.bind_input(name, "cuda", index, NUMPY_DTYPES[tensor.dtype], tuple(tensor.shape), tensor.data_ptr())
        out = torch.empty(spec.output.shape(self.manifest.shapes, n), dtype=torch.float32, device=self.device)
        binding.bind_output(spec.output.name, "cuda", index, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream: inputs must be written
        session.run_with_iobinding(binding)  # returns once ORT's stream is done
        return out
