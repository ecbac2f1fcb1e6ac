"""FP16 TensorRT engines from a meme's checked ONNX export, built through polygraphy, refittable.

One optimisation profile per batch size the runtime runs a graph at (`GraphSpec.buckets`: the UNet at 1, 2, 4
and 8 clips, the others at 1), each static (min = opt = max), so every batch size gets kernels chosen for it
rather than for one dynamic range; a timing cache shared by all builds on this machine, and an engine cache of
bases: a second meme on the same base, shapes, GPU and TensorRT copies the first meme's engines and refits only
the UNet's weights from its own ONNX file instead of building again.

TensorRT is the optional extra `meme-star[trt]` and needs an NVIDIA GPU; it is imported only here and in
the TensorRT backend. This code follows polygraphy's and TensorRT's documented Python API; it cannot run
on the project's CPU machines (README: what was verified where).
"""

import dataclasses
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

import torch

from ..errors import MemeError
from ..files import atomic_path, replace_folder, write_error, write_json
from ..formats.export_folder import (
    ENGINES_JSON,
    EnginesInputs,
    EnginesManifest,
    ExportManifest,
    build_key,
    list_engines,
    stale_reason,
)
from ..graph_runtimes import engine_identity, require_tensorrt
from ..models.base import cache_dir
from ..models.graphs import GRAPHS, UNET, GraphSpec, Shapes


def engine_profiles(spec: GraphSpec, shapes: Shapes, names: list[str]) -> list[dict[str, tuple[int, ...]]]:
    """One static profile per batch bucket of the graph: each batched input (of those named: the ONNX file's) at
    that batch size."""
    return [{t.name: t.shape(shapes, n) for t in spec.inputs_named(names) if t.batched} for n in spec.buckets]


def _build_engine(
    trt, onnx_path: Path, plan: Path, timing_cache: Path, spec: GraphSpec, shapes: Shapes, names: list[str]
) -> None:
    from polygraphy.backend.trt import CreateConfig, Profile, engine_from_network, network_from_onnx_path, save_engine

    network = network_from_onnx_path(str(onnx_path), flags=[trt.OnnxParserFlag.NATIVE_INSTANCENORM])
    profiles = []
    for inputs in engine_profiles(spec, shapes, names):
        profile = Profile()
        for name, shape in inputs.items():
            profile.add(name, min=shape, opt=shape, max=shape)
        profiles.append(profile)
    config = CreateConfig(fp16=True, refittable=True, load_timing_cache=str(timing_cache), profiles=profiles)
    engine = engine_from_network(network, config=config, save_timing_cache=str(timing_cache))
    save_engine(engine, path=str(plan))


def _refit_engine(trt, plan: Path, onnx_path: Path) -> None:
    """Swaps the weights of the engine in `plan` for those in `onnx_path` (same graph, other weights)."""
    logger = trt.Logger(trt.Logger.ERROR)
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan.read_bytes())
    if engine is None:
        raise MemeError(f"the cached engine {plan.name} cannot be loaded: run `meme export --trt --force` to rebuild")
    refitter = trt.Refitter(engine, logger)
    if not trt.OnnxParserRefitter(refitter, logger).refit_from_file(str(onnx_path)) or not refitter.refit_cuda_engine():
        raise MemeError(f"refitting {plan.name} from {onnx_path} failed: run `meme export --trt --force` to rebuild")
    plan.write_bytes(engine.serialize())


def _read_build_seconds(path: Path) -> dict[str, float]:
    """How long each of the base's engines took to build; a missing or damaged record counts as none built."""
    try:
        seconds = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in seconds.items() if isinstance(v, (int, float))} if isinstance(seconds, dict) else {}


def build_engines(
    export_folder: Path, manifest: ExportManifest, device: torch.device, force: bool = False, quiet: bool = False
) -> dict:
    """Engines for every graph of the export under `trt-<key>/`; returns how each was made and how long it took
    (for a refit, also how long the base's engines took to build)."""
    trt = require_tensorrt()
    if device.type != "cuda":
        raise MemeError("TensorRT engines are built on the NVIDIA GPU that will run them: use --device cuda there")
    identity = engine_identity(device)
    built_from = EnginesInputs(export=manifest.key, **dataclasses.asdict(identity))
    key = build_key(built_from)
    folder = export_folder / f"trt-{key}"
    if (folder / ENGINES_JSON).is_file() and not force:
        return {"folder": str(folder), "cached": True}
    notes = [
        f"rebuilding: engines in {f.name} were {stale_reason(m, identity)}"
        for f, m in list_engines(export_folder)
        if stale_reason(m, identity)
    ]
    # Engines of the same base, shapes, precision and GPU differ only in the UNet's tuned weights.
    shared_key = build_key(
        {k: v for k, v in dataclasses.asdict(manifest.built_from).items() if k != "adapter_sha256"}
        | dataclasses.asdict(identity)
    )
    shared = cache_dir() / "engines" / shared_key
    timing_cache = cache_dir() / "engines" / f"timing-{build_key(identity)}.cache"
    tmp = export_folder / f".building-trt-{key}-{os.getpid()}"
    seconds, how = {}, {}
    try:
        shared.mkdir(parents=True, exist_ok=True)
        built_s = _read_build_seconds(shared / "built.json")
        tmp.mkdir()
        for spec in (g for g in GRAPHS if g.name in manifest.graphs):  # an older export may lack a graph
            name = spec.name
            onnx_path, plan = export_folder / f"{name}.onnx", tmp / f"{name}.plan"
            t = time.perf_counter()
            if (shared / plan.name).is_file() and name in built_s and not force:
                shutil.copyfile(shared / plan.name, plan)
                if name == UNET:
                    _refit_engine(trt, plan, onnx_path)
                how[name] = "refit" if name == UNET else "copied (base weights)"
            else:
                if not quiet:
                    print(
                        f"building the {name} engine (minutes, once per base, shapes and GPU) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                names = [t.name for t in manifest.graphs[name].inputs]
                _build_engine(trt, onnx_path, plan, timing_cache, spec, manifest.shapes, names)
                with atomic_path(shared / plan.name) as cached:
                    shutil.copyfile(plan, cached)
                how[name] = "built"
            seconds[name] = round(time.perf_counter() - t, 3)
            if how[name] == "built":
                built_s[name] = seconds[name]
                write_json(shared / "built.json", built_s)
        EnginesManifest(
            key=key,
            built_from=built_from,
            how=how,
            seconds=seconds,
            build_seconds=built_s,
            created=datetime.datetime.now().isoformat(timespec="seconds"),
        ).to_json(tmp / ENGINES_JSON)
        replace_folder(tmp, folder)
    except OSError as e:
        raise write_error(e, e.filename or export_folder) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "folder": str(folder),
        "cached": False,
        "how": how,
        "seconds": seconds,
        "build_seconds": built_s,
        "notes": notes,
    }
