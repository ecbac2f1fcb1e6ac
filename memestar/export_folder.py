"""A meme's `export/` folder: what `meme export` writes and the ONNX Runtime and TensorRT backends read.

```
export/<key>/                one export, keyed by a hash of what built it (`built_from`)
  export.json                format, key, built_from, graphs (files, inputs, outputs), self-check errors, timings
  text_encoder.onnx unet.onnx vae_decoder.onnx   (+ <name>.onnx.data when a graph is over 2 GB)
  tokenizer/ scheduler.json  the base's tokenizer and noise schedule: the engines' runtime needs no base
  trt-<key>/                 FP16 engines for one GPU and TensorRT version
    engines.json             format, key, built_from (export key, GPU, compute capability, TensorRT), how each
                             engine was made (built, refit, copied) and the seconds it took
    <graph>.plan
```
TensorRT's timing cache and the engines of each base (for refitting a second meme's UNet instead of
building it) live in `$MEMESTAR_CACHE/engines/`.

An export folder appears under its final name only when complete (built under a temporary name, then
renamed), so a folder with `export.json` is whole.
"""

import hashlib
import importlib.util
import json
from pathlib import Path

from .errors import MemeError

EXPORT_FORMAT = "memestar-export/1"
ENGINES_FORMAT = "memestar-engines/1"
EXPORT_DIR = "export"
EXPORT_JSON = "export.json"
ENGINES_JSON = "engines.json"
TOKENIZER = "tokenizer"
SCHEDULER_JSON = "scheduler.json"
EXPORT_PRECISIONS = ("fp32", "fp16")
# graph -> (input names, output names); shapes are static per meme (export.json records them)
GRAPHS = {"text_encoder": (["input_ids"], ["embeddings"]),
          "unet": (["latents", "timestep", "text", "guidance"], ["model_output"]),
          "vae_decoder": (["latents"], ["pixels"])}


def build_key(built_from: dict) -> str:
    """A short hash of what built an export or engine: the same inputs, the same key."""
    return hashlib.sha256(json.dumps(built_from, sort_keys=True).encode()).hexdigest()[:16]


def _read(path: Path, fmt: str) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == fmt else None


def ort_session(path: Path, providers: list[str] | None = None):
    """An ONNX Runtime session on one exported graph, all graph optimisations on, quiet."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def list_exports(meme_folder: Path, adapter_sha256: str) -> list[tuple[Path, dict]]:
    """The complete exports of this meme's current adapter, newest first."""
    found = []
    for path in sorted(Path(meme_folder, EXPORT_DIR).glob(f"*/{EXPORT_JSON}")):
        meta = _read(path, EXPORT_FORMAT)
        if meta and meta["built_from"]["adapter_sha256"] == adapter_sha256 and path.parent.name == meta["key"]:
            found.append((path.parent, meta))
    return sorted(found, key=lambda e: e[1]["created"], reverse=True)


def find_export(meme_folder: Path, adapter_sha256: str, precision: str | None = None,
                prefer: str | None = None) -> tuple[Path, dict]:
    """The newest export of this meme of `precision` (any, if None; of `prefer` where there is one), or a
    one-line error saying how to make one."""
    exports = list_exports(meme_folder, adapter_sha256)
    chosen = [e for e in exports if precision in (None, e[1]["built_from"]["precision"])]
    chosen.sort(key=lambda e: e[1]["built_from"]["precision"] != prefer)  # stable: newest first within each
    if not chosen:
        what = f"{precision} ONNX export" if precision else "ONNX export"
        raise MemeError(f"meme {meme_folder} has no {what} of its current adapter: run `meme export {meme_folder}"
                        f"{' --precision ' + precision if precision else ''}` first")
    return chosen[0]


def cuda_provider(device) -> tuple[str, dict]:
    """ONNX Runtime's CUDA provider on `device`, TF32 off (as torch's fp32 reference in the self-check)."""
    return "CUDAExecutionProvider", {"device_id": device.index or 0, "use_tf32": 0}


def list_engines(export_folder: Path) -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(Path(export_folder).glob(f"trt-*/{ENGINES_JSON}")):
        meta = _read(path, ENGINES_FORMAT)
        if meta and path.parent.name == f"trt-{meta['key']}":
            found.append((path.parent, meta))
    return found


INSTALL_HINT = ("TensorRT is not installed: on a Linux machine with an NVIDIA GPU run pip install \"meme-star[trt]\" "
                "(it cannot be installed on CPU-only machines; use --backend ort or torch here)")


def require_tensorrt():
    try:
        import tensorrt
    except ImportError as e:
        raise MemeError(INSTALL_HINT) from e
    if importlib.util.find_spec("polygraphy") is None:
        raise MemeError(INSTALL_HINT)
    return tensorrt


def engine_identity(device) -> dict:
    """What an engine is only valid for: the GPU model and compute capability, and the TensorRT version."""
    import torch

    trt = require_tensorrt()
    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}",
            "tensorrt": trt.__version__}


def stale_reason(meta: dict, identity: dict) -> str | None:
    """Why engines built as `meta` says cannot run here, or None when they can."""
    built = meta["built_from"]
    for field in ("gpu", "compute_capability", "tensorrt"):
        if built[field] != identity[field]:
            return f"built for {field.replace('_', ' ')} {built[field]}, this machine has {identity[field]}"
    return None


def engines_for(export_folder: Path, identity: dict) -> Path | None:
    """The engine folder of this export built for the machine `identity` describes, if there is one."""
    return next((folder for folder, meta in list_engines(export_folder) if stale_reason(meta, identity) is None), None)
