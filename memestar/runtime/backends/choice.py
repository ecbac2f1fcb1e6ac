"""Which backend runs a meme here: the fastest its exports allow on this device, and the graph backends opened on
an export."""

import importlib.util
from pathlib import Path

import torch

from ...device import EXPORT_PRECISIONS
from ...errors import MemeError
from ...formats.export_folder import EXPORT_JSON, ExportManifest, engines_for, find_export, list_exports
from ...formats.meme_folder import MemeManifest
from ...graph_runtimes import engine_identity
from .base import Backend


def choose_backend(
    folder: Path, meme: MemeManifest, device: torch.device, precision: str = "auto"
) -> tuple[str, Path | None]:
    """The fastest backend this meme's exports allow here, and the export it runs: TensorRT engines built for
    this GPU; on a CPU, ONNX Runtime when the export's own timing there found it faster than torch; else torch
    (also for bf16, which no export holds)."""
    if precision not in ("auto", *EXPORT_PRECISIONS):
        return "torch", None
    exports = [
        (path, m)
        for path, m in list_exports(folder, meme.adapter_sha256)
        if precision in ("auto", m.built_from.precision)
    ]
    if device.type == "cuda":
        try:
            identity = engine_identity(device)
        except MemeError:  # no TensorRT here
            return "torch", None
        for path, _ in exports:
            if engines_for(path, identity) is not None:
                return "trt", path
        return "torch", None
    if importlib.util.find_spec("onnxruntime"):
        for path, export in exports:
            checks = [g.check for g in export.graphs.values()]
            if export.device == "cpu" and sum(c.ort_s for c in checks) < sum(c.torch_s for c in checks):
                return "ort", path
    return "torch", None


def load_graph_backend(
    kind: str, folder: Path, meme: MemeManifest, device: torch.device, precision: str, export_folder: Path | None = None
) -> Backend:
    """The ONNX Runtime or TensorRT backend on `export_folder`, or on the meme's newest export of `precision`
    (auto: fp16 on a GPU, fp32 on a CPU, else whichever there is)."""
    if export_folder is not None:
        manifest = ExportManifest.from_json(export_folder / EXPORT_JSON)
    elif precision == "auto":
        export_folder, manifest = find_export(
            folder, meme.adapter_sha256, prefer="fp16" if device.type == "cuda" else "fp32"
        )
    elif precision in EXPORT_PRECISIONS:
        export_folder, manifest = find_export(folder, meme.adapter_sha256, precision)
    else:
        raise MemeError(f"--precision {precision} has no export: exports are fp32 or fp16 (`meme export --precision`)")
    if kind == "ort":
        from .ort_backend import OrtBackend

        return OrtBackend(export_folder, manifest, device)
    from .trt_backend import TrtBackend

    return TrtBackend(export_folder, manifest, device)
