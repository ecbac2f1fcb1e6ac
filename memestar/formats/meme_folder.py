"""The meme folder: what `meme train` writes and every later stage reads.

```
meme.json              format, prompt, base (reference + fingerprint), frames, size, fps, clip, training
                       settings and results, inversion settings, the clip's subject track (when its background is
                       plain), sha256 of the files below, library versions
adapter.safetensors    the tuned tensors (models.adapter)
inversion.safetensors  "latents": the clip's DDIM-inverted latents, 1 c f h w (fp32)
preview.gif            the training prompt sampled from the inversion
export/                ONNX files and engines (meme export)
```
`meme.json` is written last: a folder without it is not a meme (an unfinished run may have left a
checkpoint there).
"""

import hashlib
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..checks import MAX_FPS, MAX_FRAMES, MAX_SIZE, MIN_FPS
from ..errors import MemeError
from ..files import save_safetensors
from ..models.layout import FRAME_ATTENTION_BEFORE, FRAME_ATTENTION_MODES, GROUP_NORM_MODES, TUNED, layout_of
from ..records import read_record, record, write_record

MEME_FORMAT = "memestar-meme/1"
MEME_JSON = "meme.json"
ADAPTER = "adapter.safetensors"
INVERSION = "inversion.safetensors"
PREVIEW = "preview.gif"
CHECKPOINT = "checkpoint.safetensors"
RETRAIN = "retrain the meme (`meme train ... --force`)"
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@record
class FingerprintRecord:
    arch: str
    probe: str  # hex of the fp32 probe values (models.base.BaseFingerprint)


@record
class BaseRecord:
    reference: str  # a hub id, a path, or a built-in name: where the base was loaded from
    id: str  # the fingerprint's short form, for people and export keys
    fingerprint: FingerprintRecord | None = None


def base_record(base) -> BaseRecord:
    """What a file written from base `base` (a loaded `models.base.BaseModel`) records of it."""
    fingerprint = FingerprintRecord(**base.fingerprint.to_dict())
    return BaseRecord(reference=base.reference, id=base.fingerprint.id, fingerprint=fingerprint)


@record
class ClipRecord:
    name: str
    source_frames: int
    indices: list[int]


@record
class TrainingRecord:
    """`meme train`'s settings (train.tune.TuneSettings) and what the run measured."""

    steps: int
    lr: float
    seed: int
    checkpoint_every: int
    gradient_checkpointing: bool
    max_grad_norm: float
    weight_decay: float
    precision: str
    losses: list[float]
    first_loss: float
    final_loss: float
    seconds: dict[str, float]
    peak_memory_bytes: int
    device: str
    motion_loss: dict[str, float] | None = None  # loss name -> weight (train/losses.py); None: mse alone
    tuned: str = "all"  # what tuning changed (models.video_unet.TUNED)

    def problem(self) -> str | None:
        return (
            f"field training.tuned: {self.tuned!r} is not one of {', '.join(TUNED)}"
            if self.tuned not in TUNED
            else None
        )


@record
class SubjectTrackRecord:
    """Where the clip's subject is in each frame (`sampling/follow.py`): centroid x, y and size in half-widths (the
    frame spans [-1, 1]), what `meme gen --follow` holds a new subject to."""

    x: list[float]
    y: list[float]
    size: list[float]
    background: list[float] | None = None  # the plain background's RGB, 0-255 (an animated still's); None: before

    def problem(self) -> str | None:
        if not len(self.x) == len(self.y) == len(self.size):
            return "field subject_track: x, y and size must have one value per frame each"
        if self.background is not None and (
            len(self.background) != 3 or any(not 0 <= v <= 255 for v in self.background)
        ):
            return "field subject_track.background: must be 3 values (RGB) from 0 to 255"
        if any(abs(v) > 1 for v in self.x + self.y):
            return "field subject_track: x and y must be from -1 to 1"
        if any(not 0 < v <= 4 for v in self.size):
            return "field subject_track.size: must be above 0 and at most 4"
        return None

    @classmethod
    def from_tensor(cls, track, background=None) -> "SubjectTrackRecord":
        """From `(f, 3)` (x, y, size per frame) and the background's RGB."""
        x, y, size = (track[:, k].tolist() for k in range(3))
        return cls(x=x, y=y, size=size, background=None if background is None else [float(v) for v in background])

    def tensor(self) -> torch.Tensor:
        """`(f, 3)` fp32."""
        return torch.tensor([self.x, self.y, self.size], dtype=torch.float32).T.contiguous()


@record
class InversionRecord:
    steps: int
    prompt: str

    def problem(self) -> str | None:
        return f"field inversion.steps: {self.steps} is below 1" if self.steps < 1 else None


@record
class MemeManifest:
    prompt: str
    base: BaseRecord
    frames: int
    size: int
    fps: float
    group_norm: str
    inversion: InversionRecord
    files: dict[str, str]  # sha256 of the adapter and the inversion: mandatory, checked on every read
    clip: ClipRecord | None = None  # absent for memes made without a clip (the bench's untrained ones)
    training: TrainingRecord | None = None
    versions: dict[str, str] | None = None
    template: str | None = None  # the prompt with its subject as {subject} (memestar/prompts.py); None: guessed
    frame_positions: bool = False  # temporal attention sees frame indices (models/video_unet.py); absent: made before
    frame_attention: str = FRAME_ATTENTION_BEFORE  # whose keys each frame's self-attention sees (models/layout.py)
    # the clip's subject per frame, for `meme gen --follow`; None: a clip without a plain background, or made before
    subject_track: SubjectTrackRecord | None = None
    format: str = MEME_FORMAT

    @property
    def layout(self) -> dict:
        """What the meme's video UNet is built with, as `VideoUNet` takes it."""
        return layout_of(self)

    def problem(self) -> str | None:
        if not self.prompt.strip():
            return "field prompt: is empty"
        if self.template is not None and self.template.count("{subject}") != 1:
            return "field template: must hold {subject} once"
        if not 1 <= self.frames <= MAX_FRAMES:
            return f"field frames: {self.frames} is not from 1 to {MAX_FRAMES}"
        if not (8 <= self.size <= MAX_SIZE and self.size % 8 == 0):
            return f"field size: {self.size} is not a multiple of 8 from 8 to {MAX_SIZE}"
        if not MIN_FPS <= self.fps <= MAX_FPS:
            return f"field fps: {self.fps} is not from {MIN_FPS} to {MAX_FPS}"
        if self.group_norm not in GROUP_NORM_MODES:
            return f"field group_norm: {self.group_norm!r} is not one of {', '.join(GROUP_NORM_MODES)}"
        if self.frame_attention not in FRAME_ATTENTION_MODES:
            return f"field frame_attention: {self.frame_attention!r} is not one of {', '.join(FRAME_ATTENTION_MODES)}"
        if self.subject_track is not None and len(self.subject_track.x) != self.frames:
            return f"field subject_track: has {len(self.subject_track.x)} frames, the meme {self.frames}"
        if set(self.files) != {ADAPTER, INVERSION}:
            return f"field files: must list exactly {ADAPTER} and {INVERSION} with their sha256"
        bad = [name for name, digest in self.files.items() if not SHA256.match(digest)]
        if bad:
            return f"field files.{bad[0]}: is not a sha256 (64 hex digits)"
        return None

    @property
    def adapter_sha256(self) -> str:
        return self.files[ADAPTER]

    @classmethod
    def from_json(cls, path: Path) -> "MemeManifest":
        return read_record(cls, path, MEME_FORMAT, RETRAIN)

    def to_json(self, path: Path) -> None:
        write_record(self, path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import diffusers
    import transformers

    from .. import __version__

    return {
        "memestar": __version__,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
    }


def save_inversion(path: Path, latents: torch.Tensor, steps: int) -> None:
    save_safetensors({"latents": latents.detach().float().cpu()}, path, metadata={"steps": str(steps)})


def load_inversion(folder: Path, shape: tuple[int, ...] | None = None) -> torch.Tensor:
    """The stored start latents `1 c f h w` (fp32), checked for shape (when given) and finiteness."""
    path = Path(folder) / INVERSION
    try:
        latents = load_file(path)["latents"]
    except (SafetensorError, KeyError, OSError) as e:
        raise MemeError(f"{path} is not a readable inversion file ({str(e).splitlines()[0]}): {RETRAIN}") from e
    if shape is not None and tuple(latents.shape) != tuple(shape):
        raise MemeError(
            f"{path} holds latents of shape {tuple(latents.shape)}, but this meme's base and meme.json "
            f"need {tuple(shape)}: {RETRAIN}"
        )
    if latents.dtype != torch.float32 or not torch.isfinite(latents).all():
        raise MemeError(f"{path} holds non-finite or non-fp32 latents: {RETRAIN}")
    return latents


def write_meme_json(folder: Path, **fields) -> MemeManifest:
    """meme.json from `fields` (MemeManifest's) and the hashes of the meme's files, written last, atomically."""
    manifest = MemeManifest(files={name: sha256(folder / name) for name in (ADAPTER, INVERSION)}, **fields)
    manifest.to_json(folder / MEME_JSON)
    return manifest


def read_meme(folder: str | Path, verify_files: bool = True) -> MemeManifest:
    """meme.json of a complete meme folder, after checking that its files are the ones it was written with (unless
    `verify_files` is False: for a caller that only reads meme.json and loads the meme afterwards)."""
    folder = Path(folder)
    path = folder / MEME_JSON
    if not folder.is_dir():
        raise MemeError(f"meme folder {folder} not found: pass a folder made by `meme train`")
    if not path.is_file():
        hint = " (an unfinished run: `meme train ... --resume`)" if (folder / CHECKPOINT).exists() else ""
        raise MemeError(f"{folder} is not a meme folder: it has no {MEME_JSON}{hint}")
    manifest = MemeManifest.from_json(path)
    for name, digest in manifest.files.items() if verify_files else ():
        if not (folder / name).is_file():
            raise MemeError(f"meme {folder} is incomplete: {name} is missing; {RETRAIN}")
        if sha256(folder / name) != digest:
            raise MemeError(f"meme {folder}: {name} changed since meme.json was written; {RETRAIN}")
    return manifest
