"""A learned subject's folder: what `meme subject learn` writes and the runtime reads (`meme gen --subject NAME`).

```
subject.json           format, name, token (<name>), base (reference + fingerprint), width, how it was learned,
                       sha256 of the file below, library versions
embedding.safetensors  "embedding": the token's row of the base's text-embedding table, (width,) fp32
```
`subject.json` is written last. A subject belongs to the base it was learned on: the runtime refuses it on another.
"""

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..checks import MAX_SUBJECT_PHOTOS, SUBJECT_NAME_PATTERN
from ..errors import MemeError
from ..files import save_safetensors
from ..records import read_record, record, write_record
from .meme_folder import SHA256, BaseRecord, sha256

SUBJECT_FORMAT = "memestar-subject/1"
SUBJECT_JSON = "subject.json"
EMBEDDING = "embedding.safetensors"
RELEARN = "learn it again (`meme subject learn PHOTOS --name NAME --force`)"


def token_of(name: str) -> str:
    """The word a prompt names a learned subject by: `<name>`, a token of its own in the base's tokenizer."""
    return f"<{name}>"


@record
class SubjectTrainingRecord:
    photos: int
    steps: int
    lr: float
    seed: int
    init_word: str  # the base's word the token started from
    first_loss: float
    final_loss: float
    seconds: float
    device: str

    def problem(self) -> str | None:
        if not 1 <= self.photos <= MAX_SUBJECT_PHOTOS:
            return f"field training.photos: {self.photos} is not from 1 to {MAX_SUBJECT_PHOTOS}"
        return None


@record
class SubjectManifest:
    name: str
    token: str
    base: BaseRecord
    width: int  # the text encoder's embedding width
    training: SubjectTrainingRecord
    files: dict[str, str]  # sha256 of the embedding: checked on every read
    versions: dict[str, str] | None = None
    format: str = SUBJECT_FORMAT

    def problem(self) -> str | None:
        if not SUBJECT_NAME_PATTERN.fullmatch(self.name):
            return f"field name: {self.name!r} is not a subject name"
        if self.token != token_of(self.name):
            return f"field token: must be {token_of(self.name)!r}"
        if self.width < 1:
            return f"field width: {self.width} is below 1"
        if set(self.files) != {EMBEDDING} or not SHA256.match(self.files[EMBEDDING]):
            return f"field files: must list exactly {EMBEDDING} with its sha256"
        return None


def write_subject(folder: Path, embedding: torch.Tensor, **fields) -> SubjectManifest:
    """The subject's embedding, then subject.json (`fields`: SubjectManifest's) with its hash, atomically each."""
    save_safetensors({"embedding": embedding.detach().float().cpu().contiguous()}, folder / EMBEDDING)
    manifest = SubjectManifest(files={EMBEDDING: sha256(folder / EMBEDDING)}, width=len(embedding), **fields)
    write_record(manifest, folder / SUBJECT_JSON)
    return manifest


def read_subject(folder: str | Path) -> tuple[SubjectManifest, torch.Tensor]:
    """A learned subject's manifest and embedding `(width,)` fp32, its file checked against subject.json."""
    folder = Path(folder)
    if not (folder / SUBJECT_JSON).is_file():
        raise MemeError(f"{folder} is not a learned subject: it has no {SUBJECT_JSON} (`meme subject learn` makes one)")
    manifest = read_record(SubjectManifest, folder / SUBJECT_JSON, SUBJECT_FORMAT, RELEARN)
    path = folder / EMBEDDING
    if not path.is_file() or sha256(path) != manifest.files[EMBEDDING]:
        raise MemeError(f"subject {manifest.name}: {EMBEDDING} is missing or changed since {SUBJECT_JSON}: {RELEARN}")
    try:
        embedding = load_file(path)["embedding"]
    except (SafetensorError, KeyError, OSError) as e:
        raise MemeError(f"{path} is not a readable subject embedding ({str(e).splitlines()[0]}): {RELEARN}") from e
    if embedding.shape != (manifest.width,) or embedding.dtype != torch.float32 or not torch.isfinite(embedding).all():
        raise MemeError(f"{path} does not hold {manifest.width} finite fp32 values: {RELEARN}")
    return manifest, embedding


def same_base(a: BaseRecord, b: BaseRecord) -> bool:
    """Whether two records name the same base weights (their fingerprints' short forms)."""
    return a.id == b.id
