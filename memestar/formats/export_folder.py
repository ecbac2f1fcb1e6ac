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

import dataclasses
import hashlib
import json
from pathlib import Path

from ..device import EXPORT_PRECISIONS
from ..errors import MemeError
from ..models.graphs import GRAPHS, Shapes
from ..records import RecordError, read_record, record, write_record

EXPORT_FORMAT = "memestar-export/3"  # 3: every graph takes a batch (1 to max_batch clips)
ENGINES_FORMAT = "memestar-engines/1"
EXPORT_DIR = "export"
EXPORT_JSON = "export.json"
ENGINES_JSON = "engines.json"
TOKENIZER = "tokenizer"
SCHEDULER_JSON = "scheduler.json"
REEXPORT = "run `meme export MEME --force` to rebuild it"


@record
class ExportInputs:
    """What builds an export: the same inputs give the same key, so a repeat is a cache hit."""

    adapter_sha256: str
    base: str
    group_norm: str
    frames: int
    size: int
    guidance_batch: int
    max_batch: int  # the most clips one call of a graph takes
    precision: str
    opset: int
    versions: dict[str, str]


@record
class TensorRecord:
    name: str
    dtype: str
    shape: list[int | str]  # the batch axis by its name, "batch"


@record
class SelfCheck:
    """ONNX Runtime against fp32 torch on the same random inputs, and each one's warm time there."""

    max_abs_error: float
    relative_error: float
    tolerance: float
    ort_s: float
    ort_provider: str
    torch_s: float


@record
class GraphRecord:
    file: str
    external_data: bool
    nodes_exported: int
    nodes: int
    bytes: int
    export_s: float
    inputs: list[TensorRecord]
    outputs: list[TensorRecord]
    check: SelfCheck


@record
class ExportManifest:
    key: str
    built_from: ExportInputs
    shapes: Shapes
    graphs: dict[str, GraphRecord]
    created: str
    load_s: float
    seconds: float
    device: str
    format: str = EXPORT_FORMAT

    def problem(self) -> str | None:
        if self.built_from.max_batch < 1:
            return f"field built_from.max_batch: {self.built_from.max_batch} is below 1"
        if self.built_from.precision not in EXPORT_PRECISIONS:
            return f"field built_from.precision: {self.built_from.precision!r} is not one of {EXPORT_PRECISIONS}"
        required, known = {g.name for g in GRAPHS if g.required}, {g.name for g in GRAPHS}
        if not required <= set(self.graphs) <= known:
            return f"field graphs: holds {sorted(self.graphs)}, not {sorted(known)}"
        for spec in (g for g in GRAPHS if g.name in self.graphs):
            names = [t.name for t in self.graphs[spec.name].inputs]
            if names not in ([t.name for t in spec.inputs], [t.name for t in spec.inputs if t.required]):
                return f"field graphs.{spec.name}.inputs: {names} are not the inputs this meme-star feeds"
            if Path(self.graphs[spec.name].file).name != self.graphs[spec.name].file:
                return f"field graphs.{spec.name}.file: {self.graphs[spec.name].file!r} is not a plain file name"
        return None

    @classmethod
    def from_json(cls, path: Path) -> "ExportManifest":
        return read_record(cls, path, EXPORT_FORMAT, REEXPORT)

    def to_json(self, path: Path) -> None:
        write_record(self, path)


@record
class EngineIdentity:
    """What an engine is only valid for: the GPU model and compute capability, and the TensorRT version."""

    gpu: str
    compute_capability: str
    tensorrt: str


@record
class EnginesInputs(EngineIdentity):
    export: str  # the export's key


@record
class EnginesManifest:
    key: str
    built_from: EnginesInputs
    how: dict[str, str]  # graph -> built, refit or copied
    seconds: dict[str, float]
    build_seconds: dict[str, float]  # how long the base's engines took to build, for refit reports
    created: str
    format: str = ENGINES_FORMAT

    @classmethod
    def from_json(cls, path: Path) -> "EnginesManifest":
        return read_record(cls, path, ENGINES_FORMAT, "run `meme export MEME --trt --force` to rebuild the engines")

    def to_json(self, path: Path) -> None:
        write_record(self, path)


def build_key(built_from) -> str:
    """A short hash of what built an export or engine: the same inputs, the same key."""
    data = built_from if isinstance(built_from, dict) else dataclasses.asdict(built_from)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def list_exports(meme_folder: Path, adapter_sha256: str) -> list[tuple[Path, ExportManifest]]:
    """The complete exports of this meme's current adapter, newest first (unreadable or older formats skipped)."""
    found = []
    for path in sorted(Path(meme_folder, EXPORT_DIR).glob(f"*/{EXPORT_JSON}")):
        try:
            manifest = ExportManifest.from_json(path)
        except RecordError:
            continue
        if manifest.built_from.adapter_sha256 == adapter_sha256 and path.parent.name == manifest.key:
            found.append((path.parent, manifest))
    return sorted(found, key=lambda e: e[1].created, reverse=True)


def find_export(
    meme_folder: Path, adapter_sha256: str, precision: str | None = None, prefer: str | None = None
) -> tuple[Path, ExportManifest]:
    """The newest export of this meme of `precision` (any, if None; of `prefer` where there is one), or a
    one-line error saying how to make one."""
    exports = list_exports(meme_folder, adapter_sha256)
    chosen = [e for e in exports if precision in (None, e[1].built_from.precision)]
    chosen.sort(key=lambda e: e[1].built_from.precision != prefer)  # stable: newest first within each
    if not chosen:
        what = f"{precision} ONNX export" if precision else "ONNX export"
        raise MemeError(
            f"meme {meme_folder} has no {what} of its current adapter: run `meme export {meme_folder}"
            f"{' --precision ' + precision if precision else ''}` first"
        )
    return chosen[0]


def list_engines(export_folder: Path) -> list[tuple[Path, EnginesManifest]]:
    found = []
    for path in sorted(Path(export_folder).glob(f"trt-*/{ENGINES_JSON}")):
        try:
            manifest = EnginesManifest.from_json(path)
        except RecordError:
            continue
        if path.parent.name == f"trt-{manifest.key}":
            found.append((path.parent, manifest))
    return found


def stale_reason(manifest: EnginesManifest, identity: EngineIdentity) -> str | None:
    """Why engines built as `manifest` says cannot run here, or None when they can."""
    for field in ("gpu", "compute_capability", "tensorrt"):
        built, here = getattr(manifest.built_from, field), getattr(identity, field)
        if built != here:
            return f"built for {field.replace('_', ' ')} {built}, this machine has {here}"
    return None


def engines_for(export_folder: Path, identity: EngineIdentity) -> Path | None:
    """The engine folder of this export built for the machine `identity` describes, if there is one."""
    return next((folder for folder, meta in list_engines(export_folder) if stale_reason(meta, identity) is None), None)
