"""`meme export`: a meme folder -> checked ONNX graphs (and FP16 TensorRT engines) under its `export/`.

read meme -> key of what builds the export (from meme.json) -> cache hit, or: load base + adapter, then for
each graph torch's output on random inputs, export, clean up, check, ONNX Runtime against torch ->
tokenizer and schedule -> export.json -> rename into place (the previous export stays until then) ->
engines, with --trt.
"""

import datetime
import importlib.util
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from ..device import pick_device
from ..errors import MemeError
from ..files import replace_folder, write_error, write_json
from ..formats.export_folder import (
    EXPORT_DIR,
    EXPORT_JSON,
    SCHEDULER_JSON,
    TOKENIZER,
    ExportInputs,
    ExportManifest,
    GraphRecord,
    SelfCheck,
    TensorRecord,
    build_key,
)
from ..formats.meme_folder import ADAPTER, MemeManifest, library_versions, read_meme
from ..graph_runtimes import require_tensorrt
from ..models.adapter import load_adapter
from ..models.base import load_base
from ..models.graphs import EXPORT_BATCH, GRAPHS, GRAPHS_VERSION, Shapes, TensorSpec
from ..models.vae import vae_scale_factor
from ..models.video_unet import VideoUNet
from ..sampling.batch import MAX_BATCH
from .onnx import TOLERANCE, check_providers, export_graph, self_check
from .options import ExportOptions


def onnx_versions() -> dict:
    import onnx
    import onnxruntime
    import onnxscript

    return {
        **library_versions(),
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
        "graphs": GRAPHS_VERSION,
    }


def _require_onnx() -> None:
    missing = [m for m in ("onnx", "onnx_graphsurgeon", "onnxruntime", "onnxscript") if not importlib.util.find_spec(m)]
    if missing:
        raise MemeError(
            f'meme export needs the onnx extra ({", ".join(missing)} missing): pip install "meme-star[onnx]"'
        )


def _writable_export_dir(folder: Path) -> Path:
    export_dir = folder / EXPORT_DIR
    if export_dir.exists() and not export_dir.is_dir():
        raise MemeError(f"{export_dir} is not a folder: move that file away so exports can go there")
    target = export_dir if export_dir.exists() else folder
    if not os.access(target, os.W_OK):
        raise MemeError(f"cannot write exports: {target} is not writable; copy the meme somewhere writable")
    try:
        export_dir.mkdir(exist_ok=True)
    except OSError as e:
        raise write_error(e, folder) from e
    return export_dir


def _load(meme: MemeManifest, folder: Path, o: ExportOptions, device: torch.device):
    """The meme's base (fp32) with its video UNet and adapter, and the shapes its graphs take."""
    base = load_base(
        o.base or meme.base.reference,
        device=device,
        dtype=torch.float32,
        config=o.base_config,
        allow_pickle=o.allow_pickle,
    )
    video = VideoUNet(base.unet, **meme.layout)
    load_adapter(video, folder / ADAPTER, base.reference, base.fingerprint)
    shapes = Shapes(
        frames=meme.frames,
        latent_channels=base.vae.config.latent_channels,
        latent_side=meme.size // vae_scale_factor(base.vae),
        text_length=base.tokenizer.model_max_length,
        text_width=base.text_encoder.config.hidden_size,
        vocab_size=len(base.tokenizer),
        pixel_side=meme.size,
    )
    return base, video, shapes


def _tensor_records(specs: tuple[TensorSpec, ...], shapes: Shapes) -> list[TensorRecord]:
    return [
        TensorRecord(name=t.name, dtype=str(t.dtype).removeprefix("torch."), shape=t.named_shape(shapes)) for t in specs
    ]


def _build(
    tmp: Path, key: str, built_from: ExportInputs, meme: MemeManifest, o: ExportOptions, device: torch.device
) -> ExportManifest:
    tmp.mkdir()
    t0 = time.perf_counter()
    base, video, shapes = _load(meme, Path(o.meme), o, device)
    load_s = time.perf_counter() - t0
    graphs = {}
    providers = check_providers(device)
    for spec in tqdm(GRAPHS, desc="exporting", unit="graph", disable=o.quiet):
        module = spec.module(base, video).eval()
        inputs = spec.random_inputs(shapes)  # a batch of EXPORT_BATCH: the check sees clips kept apart
        on_device = {k: v.to(device) for k, v in inputs.items()}
        with torch.no_grad(), _no_tf32():
            reference = module(**on_device)
            t = time.perf_counter()
            module(**on_device)  # timed warm, like ONNX Runtime's second run: `--backend auto` compares the two
            _sync(device)
            torch_s = time.perf_counter() - t
        expected = spec.output.shape(shapes, EXPORT_BATCH)
        if tuple(reference.shape) != expected:
            raise MemeError(
                f"the {spec.name} graph gives shape {tuple(reference.shape)}, its spec says "
                f"{expected}: a bug in meme-star, please report it"
            )
        if built_from.precision == "fp16":
            module.half()
        info = export_graph(
            module, on_device, [t.name for t in spec.outputs], tmp / f"{spec.name}.onnx", o.opset, spec.dynamic_shapes()
        )
        module.to("meta")  # done with it: give the memory back before the next graph
        check = self_check(tmp / f"{spec.name}.onnx", reference, inputs, built_from.precision, providers)
        graphs[spec.name] = GraphRecord(
            **info,
            inputs=_tensor_records(spec.inputs, shapes),
            outputs=_tensor_records(spec.outputs, shapes),
            check=SelfCheck(**check, torch_s=round(torch_s, 4)),
        )
    base.tokenizer.save_pretrained(tmp / TOKENIZER)
    write_json(tmp / SCHEDULER_JSON, base.scheduler_config)
    manifest = ExportManifest(
        key=key,
        built_from=built_from,
        shapes=shapes,
        graphs=graphs,
        created=datetime.datetime.now().isoformat(timespec="seconds"),
        load_s=round(load_s, 3),
        seconds=round(time.perf_counter() - t0, 3),
        device=str(device),
    )
    manifest.to_json(tmp / EXPORT_JSON)
    return manifest


def _remove_leftovers(export_dir: Path) -> None:
    """Half-built or replaced exports of runs that died (their process is gone) under `export_dir`."""
    for path in export_dir.glob(".*-*"):
        pid = path.name.rsplit("-", 1)[-1]
        if path.name.startswith((".building-", ".old-")) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _no_tf32():
    """torch's reference in full fp32: cuDNN would otherwise use TF32 convolutions on Ampere and later."""
    previous = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = previous


def export_meme(o: ExportOptions) -> dict:
    o.check()
    folder = Path(o.meme)
    meme = read_meme(folder)
    _require_onnx()
    device = pick_device(o.device)
    if o.trt:  # before minutes of ONNX work, say what is missing
        require_tensorrt()
        if device.type != "cuda":
            raise MemeError("--trt builds engines on the NVIDIA GPU that will run them: run it there (--device cuda)")
    export_dir = _writable_export_dir(folder)
    precision = o.precision if o.precision != "auto" else ("fp16" if device.type == "cuda" else "fp32")
    built_from = ExportInputs(
        adapter_sha256=meme.adapter_sha256,
        base=meme.base.id,
        group_norm=meme.group_norm,
        frames=meme.frames,
        size=meme.size,
        guidance_batch=2,
        max_batch=MAX_BATCH,
        precision=precision,
        opset=o.opset,
        versions=onnx_versions(),
    )
    key = build_key(built_from)  # from meme.json alone: a cache hit loads no model
    final = export_dir / key
    cached = (final / EXPORT_JSON).is_file() and not o.force
    if cached:
        manifest = ExportManifest.from_json(final / EXPORT_JSON)
    else:
        _remove_leftovers(export_dir)
        tmp = export_dir / f".building-{key}-{os.getpid()}"
        try:
            manifest = _build(tmp, key, built_from, meme, o, device)
            replace_folder(tmp, final)
        except OSError as e:
            raise write_error(e, export_dir) from e
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = {
        "meme": str(folder),
        "export": str(final),
        "key": key,
        "cached": cached,
        "precision": precision,
        "opset": o.opset,
        "seconds": manifest.seconds,
        "graphs": {
            name: {
                "nodes": g.nodes,
                "megabytes": round(g.bytes / 2**20, 2),
                "relative_error": g.check.relative_error,
                "max_abs_error": g.check.max_abs_error,
            }
            for name, g in manifest.graphs.items()
        },
        "tolerance": TOLERANCE[precision],
    }
    if o.trt:
        from .trt import build_engines

        summary["engines"] = build_engines(final, manifest, device, force=o.force, quiet=o.quiet)
    return summary
