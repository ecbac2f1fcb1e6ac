"""The runtimes of exported graphs, as `meme export`'s self-check and the runtime's backends open them: ONNX Runtime
sessions (CPU or CUDA) and TensorRT, with what identifies a machine's engines."""

import importlib.util
from pathlib import Path

from .errors import MemeError
from .formats.export_folder import EngineIdentity
from .models.graphs import BATCH_AXIS


def ort_session(path: Path, providers: list | None = None, batch: int | None = None):
    """An ONNX Runtime session on one exported graph, all graph optimisations on, quiet; `batch` pins the batch
    axis to that size, so ONNX Runtime optimises the graph as a static one (about 12% faster a step on a CPU,
    `benchmarks/export_batch.py`)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if batch is not None:
        options.add_free_dimension_override_by_name(BATCH_AXIS, batch)
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def cuda_provider(device) -> tuple[str, dict]:
    """ONNX Runtime's CUDA provider on `device`, TF32 off (as torch's fp32 reference in the self-check)."""
    return "CUDAExecutionProvider", {"device_id": device.index or 0, "use_tf32": 0}


INSTALL_HINT = (
    'TensorRT is not installed: on a Linux machine with an NVIDIA GPU run pip install "meme-star[trt]" '
    "(it cannot be installed on CPU-only machines; use --backend ort or torch here)"
)


def require_tensorrt():
    try:
        import tensorrt
    except ImportError as e:
        raise MemeError(INSTALL_HINT) from e
    if importlib.util.find_spec("polygraphy") is None:
        raise MemeError(INSTALL_HINT)
    return tensorrt


def engine_identity(device) -> EngineIdentity:
    import torch

    trt = require_tensorrt()
    major, minor = torch.cuda.get_device_capability(device)
    return EngineIdentity(
        gpu=torch.cuda.get_device_name(device), compute_capability=f"{major}.{minor}", tensorrt=trt.__version__
    )
