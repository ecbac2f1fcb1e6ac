"""The TensorRT backend: a meme's FP16 engines, each call a CUDA graph around the engine's launch.

Every engine gets static torch buffers for its inputs and outputs (shapes are static per meme); the first
call runs the engine once, then captures its launch into a CUDA graph that later calls replay after
copying their inputs in. Needs the `trt` extra and an NVIDIA GPU; it cannot run on the project's CPU
machines (README: what was verified where).
"""

from pathlib import Path

import torch

from ..errors import MemeError
from ..export_folder import (ExportManifest, engine_identity, engines_for, list_engines, require_tensorrt,
                             stale_reason)
from ..models.graphs import GRAPHS, GraphSpec
from .graph_backend import GraphBackend


def usable_engines(export_folder: Path, device: torch.device) -> Path:
    """The engine folder of this export built for this GPU and TensorRT, or a one-line error saying why not."""
    here = engine_identity(device)
    usable = engines_for(export_folder, here)
    if usable is not None:
        return usable
    engines = list_engines(export_folder)
    why = f"its engines were {stale_reason(engines[0][1], here)}" if engines else "it has no TensorRT engines"
    raise MemeError(f"export {export_folder} cannot run here: {why}; run `meme export MEME --trt` on this machine")


class TrtEngine:
    def __init__(self, trt, plan: Path, device: torch.device):
        logger = trt.Logger(trt.Logger.ERROR)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise MemeError(f"TensorRT {trt.__version__} cannot load {plan}: run `meme export MEME --trt --force`")
        self.context = self.engine.create_execution_context()
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int64: torch.int64,
                  trt.int32: torch.int32}
        self.buffers, self.outputs = {}, []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(self.engine.get_tensor_shape(name))
            self.buffers[name] = torch.empty(shape, dtype=dtypes[self.engine.get_tensor_dtype(name)], device=device)
            self.context.set_tensor_address(name, self.buffers[name].data_ptr())
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                self.outputs.append(name)
        self.graph = None

    def __call__(self, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        for name, tensor in feeds.items():
            self.buffers[name].copy_(tensor)
        if self.graph is None:
            self.graph = self._capture()
        if self.graph is False:  # this engine cannot be captured: launch it directly
            self._launch(torch.cuda.current_stream().cuda_stream)
        else:
            self.graph.replay()
        return self.buffers[self.outputs[0]].float().clone()

    def _launch(self, stream_handle: int) -> None:
        if not self.context.execute_async_v3(stream_handle):
            raise MemeError("TensorRT failed to run an engine: rebuild it with `meme export MEME --trt --force`")

    def _capture(self):
        stream = torch.cuda.current_stream()
        self._launch(stream.cuda_stream)  # warm-up outside the capture (TensorRT may allocate on the first run)
        stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._launch(torch.cuda.current_stream().cuda_stream)
        except RuntimeError:
            return False
        return graph


class TrtBackend(GraphBackend):
    name = "trt"

    def __init__(self, export_folder: Path, manifest: ExportManifest, device: torch.device):
        trt = require_tensorrt()
        if device.type != "cuda":
            raise MemeError("--backend trt runs on an NVIDIA GPU: use --device cuda, or --backend ort on a CPU")
        super().__init__(export_folder, manifest, device)
        engines = usable_engines(self.folder, device)
        self.engines = {spec.name: TrtEngine(trt, engines / f"{spec.name}.plan", device) for spec in GRAPHS}

    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.engines[spec.name](feeds)
