"""One torch module -> one checked ONNX file, and ONNX Runtime against torch on the same inputs.

`export_graph`: torch's dynamo exporter (opset 18 and up), weights in an external file when the graph is
over 2 GB, clean-up and constant folding with onnx-graphsurgeon, then `onnx.checker` and shape inference.
`self_check`: runs the file in ONNX Runtime and compares it with the fp32 torch module's output.
"""

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import ExportFailed
from ..files import make_ordinary
from ..graph_runtimes import cuda_provider, ort_session

PROTOBUF_LIMIT = 2 * 1024**3  # one ONNX file holds at most 2 GB; larger graphs keep their weights beside it
TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2}  # relative: max abs error / max abs of torch's output


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def export_graph(
    module: torch.nn.Module,
    inputs: dict[str, torch.Tensor],
    output_names: list[str],
    path: Path,
    opset: int,
    dynamic_shapes: tuple | None = None,
) -> dict:
    """Writes `module(**inputs)` to `path`, static but for the axes `dynamic_shapes` names (one entry per input,
    as torch.export takes them); returns what was done (nodes, seconds, sizes)."""
    import onnx
    import onnx_graphsurgeon as gs

    t = time.perf_counter()
    for name in ("torch.onnx", "torch.onnx._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own pytree deprecations, inside the exporter
        warnings.filterwarnings("ignore", "# The axis name")  # one batch axis shared by several inputs: as meant
        try:
            program = torch.onnx.export(
                module,
                tuple(inputs.values()),
                input_names=list(inputs),
                output_names=output_names,
                opset_version=opset,
                dynamo=True,
                verbose=False,
                dynamic_shapes=dynamic_shapes,
            )
        except Exception as e:  # the exporter raises many kinds; the message is what the user needs
            raise ExportFailed(f"the ONNX exporter failed on {path.stem} at opset {opset}: {_first_line(e)}") from e
    model = program.model_proto
    _check_dynamic(model, inputs, dynamic_shapes, path)
    exported_nodes = len(model.graph.node)
    graph = gs.import_onnx(model)
    graph.cleanup().toposort()
    graph.fold_constants().cleanup()
    weight_bytes = sum(c.values.nbytes for c in graph.tensors().values() if isinstance(c, gs.Constant))
    external = weight_bytes > PROTOBUF_LIMIT * 0.75  # the graph itself and protobuf's overhead need the rest
    model = gs.export_onnx(graph)
    onnx.save_model(
        model, path, save_as_external_data=external, all_tensors_to_one_file=True, location=f"{path.name}.data"
    )
    onnx.checker.check_model(str(path), full_check=True)  # by path: works past 2 GB
    onnx.shape_inference.infer_shapes_path(str(path), str(path))
    files = [path] + ([path.with_name(f"{path.name}.data")] if external else [])
    for f in files:
        make_ordinary(f)  # onnx writes external data private (0600)
    return {
        "file": path.name,
        "external_data": external,
        "nodes_exported": exported_nodes,
        "nodes": len(graph.nodes),
        "bytes": sum(f.stat().st_size for f in files),
        "export_s": round(time.perf_counter() - t, 3),
    }


def _check_dynamic(model, inputs: dict[str, torch.Tensor], dynamic_shapes: tuple | None, path: Path) -> None:
    """Raises when an axis asked to be dynamic came out as a number: torch's exporter falls back to a static
    graph when the model fixes a size on the way (a shape test, a Python loop over it) instead of failing."""
    for name, dims, value in zip(inputs, dynamic_shapes or (), model.graph.input):
        shape = value.type.tensor_type.shape.dim
        fixed = [axis for axis in (dims or {}) if not shape[axis].dim_param]
        if fixed:
            raise ExportFailed(
                f"the ONNX exporter fixed axis {fixed[0]} of {path.stem}'s input {name} to "
                f"{shape[fixed[0]].dim_value} instead of keeping it dynamic: a bug in meme-star "
                f"(the graph's code specialises the batch size), please report it"
            )


def check_providers(device: torch.device) -> list:
    """ONNX Runtime's CUDA provider (TF32 off, like torch's reference) for the self-check where the export runs
    on a GPU and it is installed; else the CPU provider."""
    import onnxruntime

    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        return [cuda_provider(device), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def self_check(
    path: Path, reference: torch.Tensor, inputs: dict[str, torch.Tensor], precision: str, providers: list[str]
) -> dict:
    """ONNX Runtime's output on `inputs` against torch's `reference`; raises when over the precision's tolerance."""
    feeds = {k: v.cpu().numpy() for k, v in inputs.items()}
    try:
        session = ort_session(path, providers)
        out = session.run(None, feeds)[0]
        t = time.perf_counter()
        session.run(None, feeds)  # warm: the first run also allocates and plans
        seconds = time.perf_counter() - t
    except Exception as e:  # onnxruntime raises its own kinds (an opset newer than it knows, a missing kernel)
        raise ExportFailed(
            f"ONNX Runtime cannot run {path.name}: {_first_line(e)}; try --opset 18 or a newer onnxruntime"
        ) from e
    ref = reference.float().cpu().numpy()
    if out.shape != ref.shape:
        raise ExportFailed(f"{path.name}: ONNX Runtime gave shape {out.shape}, torch {ref.shape}")
    max_abs = float(np.abs(out - ref).max())
    relative = max_abs / max(float(np.abs(ref).max()), 1e-12)
    check = {
        "max_abs_error": max_abs,
        "relative_error": relative,
        "tolerance": TOLERANCE[precision],
        "ort_s": round(seconds, 4),
        "ort_provider": session.get_providers()[0],
    }
    if not np.isfinite(relative) or relative > TOLERANCE[precision]:
        raise ExportFailed(
            f"{path.stem} failed its self-check: ONNX Runtime differs from torch by {relative:.2e} "
            f"(relative; max abs {max_abs:.2e}), over the {precision} tolerance {TOLERANCE[precision]:g}; "
            f"the previous export is kept"
        )
    return check
