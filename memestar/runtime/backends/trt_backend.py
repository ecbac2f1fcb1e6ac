"""The TensorRT backend: a meme's FP16 engines, each call a CUDA graph around the engine's launch.

An engine holds one static optimisation profile per batch size it runs at (the UNet: 1, 2, 4, 8 clips). Each
profile gets its own execution context and static torch buffers for its inputs and outputs; a batch runs in the
smallest profile that holds it, padded with copies of its first clip. The first call of a profile runs the
engine once, then captures its launch into a CUDA graph that later calls replay after copying their inputs in.
Needs the `trt` extra and an NVIDIA GPU; it cannot run on the project's CPU machines (README: what was verified
where).
"""

from pathlib import Path

import torch

from ...errors import MemeError
from ...formats.export_folder import ExportManifest, engines_for, list_engines, stale_reason
from ...graph_runtimes import engine_identity, require_tensorrt
from ...models.graphs import GRAPHS, UNET, GraphSpec
from ...sampling.batch import padded
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


class TrtProfile:
    """One optimisation profile of an engine: its execution context, static buffers and captured launch."""

    def __init__(self, trt, engine, index: int, device: torch.device):
        self.context = engine.create_execution_context()
        stream = torch.cuda.current_stream(device)
        if engine.num_optimization_profiles > 1:
            self.context.set_optimization_profile_async(index, stream.cuda_stream)
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for name in inputs:
            shape = tuple(engine.get_tensor_shape(name))
            if -1 in shape:  # a batched input: this profile's shape (min = opt = max)
                shape = tuple(engine.get_tensor_profile_shape(name, index)[0])
            self.context.set_input_shape(name, shape)
        dtypes = {
            trt.float32: torch.float32,
            trt.float16: torch.float16,
            trt.int64: torch.int64,
            trt.int32: torch.int32,
        }
        self.buffers = {
            n: torch.empty(
                tuple(self.context.get_tensor_shape(n)), dtype=dtypes[engine.get_tensor_dtype(n)], device=device
            )
            for n in names
        }
        for name, buffer in self.buffers.items():
            self.context.set_tensor_address(name, buffer.data_ptr())
        self.output = next(n for n in names if n not in inputs)
        self.batch = len(self.buffers[inputs[0]])  # the first input is batched in every graph
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
        return self.buffers[self.output].float().clone()

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


class TrtEngine:
    """One engine (`<graph>.plan`) and its profiles by batch size."""

    def __init__(self, trt, plan: Path, device: torch.device):
        logger = trt.Logger(trt.Logger.ERROR)
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
        if self.engine is None:
            raise MemeError(f"TensorRT {trt.__version__} cannot load {plan}: run `meme export MEME --trt --force`")
        profiles = [TrtProfile(trt, self.engine, i, device) for i in range(self.engine.num_optimization_profiles)]
        self.profiles = {p.batch: p for p in profiles}

    def __call__(self, spec: GraphSpec, feeds: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        """The output for n rows, run in the smallest profile that holds them (batched feeds padded to it)."""
        rows = next((b for b in sorted(self.profiles) if b >= n), None)
        if rows is None:
            raise MemeError(
                f"these TensorRT engines run at most {max(self.profiles)} clips at a time, not {n}: "
                f"rebuild them with `meme export MEME --trt --force`"
            )
        batched = {t.name for t in spec.inputs if t.batched}
        return self.profiles[rows]({k: padded(v, rows) if k in batched else v for k, v in feeds.items()})[:n]


class TrtBackend(GraphBackend):
    name = "trt"

    def __init__(self, export_folder: Path, manifest: ExportManifest, device: torch.device):
        trt = require_tensorrt()
        if device.type != "cuda":
            raise MemeError("--backend trt runs on an NVIDIA GPU: use --device cuda, or --backend ort on a CPU")
        super().__init__(export_folder, manifest, device)
        engines = usable_engines(self.folder, device)
        self.engines = {
            spec.name: TrtEngine(trt, engines / f"{spec.name}.plan", device)
            for spec in GRAPHS
            if spec.name in manifest.graphs
        }

    @property
    def max_batch(self) -> int:
        return min(super().max_batch, max(self.engines[UNET].profiles))

    def _run(self, spec: GraphSpec, feeds: dict[str, torch.Tensor], n: int) -> torch.Tensor:
        return self.engines[spec.name](spec, feeds, n)
