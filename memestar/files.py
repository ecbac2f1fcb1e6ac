"""Writing files so that an interrupted write never leaves a half file under the real name."""

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path

from .errors import MemeError


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside `path` (same suffix); renames it into place if the block succeeds."""
    path = Path(path)
    if not path.parent.is_dir():
        raise MemeError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        make_ordinary(tmp)  # some writers create private files; outputs are ordinary files
        os.replace(tmp, path)
    except PermissionError as e:
        raise MemeError(f"cannot write {path}: permission denied; choose another output path") from e
    finally:
        tmp.unlink(missing_ok=True)


def make_ordinary(path: str | Path) -> None:
    """Gives a file the permissions of one the user created normally (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json(path: str | Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def results_dir() -> Path:
    """Where reports go: the repo's benchmarks/results/ when run from its root, else the current folder."""
    folder = Path("benchmarks/results") if Path("benchmarks").is_dir() else Path(".")
    folder.mkdir(exist_ok=True)
    return folder


def slug(text: str) -> str:
    """A file name from a prompt: "Running apple-cat!" -> "running-apple-cat"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "meme"
