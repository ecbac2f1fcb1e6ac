"""The meme folder: what `meme train` writes and every later stage reads.

```
meme.json              format, prompt, base (reference + fingerprint), frames, size, fps, clip, training
                       settings and results, inversion settings, sha256 of the files below, library versions
adapter.safetensors    the tuned tensors (models.adapter)
inversion.safetensors  "latents": the clip's DDIM-inverted latents, 1 c f h w (fp32)
preview.gif            the training prompt sampled from the inversion
export/                ONNX files and engines (meme export)
```
`meme.json` is written last: a folder without it is not a meme (an unfinished run may have left a
checkpoint there).
"""

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .errors import MemeError
from .files import atomic_path, write_json

MEME_FORMAT = "memestar-meme/1"
MEME_JSON = "meme.json"
ADAPTER = "adapter.safetensors"
INVERSION = "inversion.safetensors"
PREVIEW = "preview.gif"
CHECKPOINT = "checkpoint.safetensors"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict:
    import diffusers
    import transformers

    from . import __version__

    return {"memestar": __version__, "torch": torch.__version__, "diffusers": diffusers.__version__,
            "transformers": transformers.__version__}


def save_inversion(path: Path, latents: torch.Tensor, steps: int) -> None:
    with atomic_path(path) as tmp:
        save_file({"latents": latents.detach().float().cpu().contiguous()}, tmp, metadata={"steps": str(steps)})


def load_inversion(folder: Path) -> torch.Tensor:
    return load_file(Path(folder) / INVERSION)["latents"]


def write_meme_json(folder: Path, meta: dict) -> None:
    """Records the hashes of the meme's files and writes meme.json (last, atomically)."""
    meta = {"format": MEME_FORMAT, **meta,
            "files": {name: sha256(folder / name) for name in (ADAPTER, INVERSION)}}
    write_json(folder / MEME_JSON, meta)


def read_meme(folder: str | Path) -> dict:
    """meme.json of a complete meme folder, after checking that its files are the ones it was written with."""
    folder = Path(folder)
    path = folder / MEME_JSON
    if not folder.is_dir():
        raise MemeError(f"meme folder {folder} not found: pass a folder made by `meme train`")
    if not path.is_file():
        hint = " (an unfinished run: `meme train ... --resume`)" if (folder / CHECKPOINT).exists() else ""
        raise MemeError(f"{folder} is not a meme folder: it has no {MEME_JSON}{hint}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MemeError(f"{path} is not valid JSON ({e}): retrain the meme") from e
    if meta.get("format") != MEME_FORMAT:
        raise MemeError(f"{path} has format {meta.get('format')!r}, this meme-star reads {MEME_FORMAT!r}")
    for name, digest in meta.get("files", {}).items():
        if not (folder / name).is_file():
            raise MemeError(f"meme {folder} is incomplete: {name} is missing; retrain it")
        if sha256(folder / name) != digest:
            raise MemeError(f"meme {folder}: {name} changed since meme.json was written; retrain it")
    return meta
