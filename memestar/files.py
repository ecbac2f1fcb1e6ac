"""Writing files so that an interrupted write never leaves a half file under the real name."""

import errno
import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from .errors import MemeError


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside `path` (same suffix); renames it into place if the block succeeds."""
    path = Path(path)
    if not path.parent.is_dir():
        raise MemeError(f"cannot write {path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # per process: two writers never share it
    try:
        yield tmp
        make_ordinary(tmp)  # some writers create private files; outputs are ordinary files
        os.replace(tmp, path)
    except PermissionError as e:
        raise MemeError(f"cannot write {path}: permission denied; choose another output path") from e
    finally:
        tmp.unlink(missing_ok=True)


def replace_folder(tmp: Path, final: Path) -> None:
    """Moves a finished folder into place; an old one under that name goes only after the new one is in,
    and comes back if the move fails."""
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    if final.exists():
        final.rename(old)
    try:
        tmp.rename(final)
    except OSError:
        if old.exists():
            old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_error(e: OSError, where: str | Path) -> MemeError:
    """One line for a write that failed under `where`: a full disk says so; what existed is untouched."""
    if e.errno == errno.ENOSPC:
        return MemeError(f"the disk under {where} is full: free space and run again (existing files are untouched)")
    return MemeError(f"cannot write under {where}: {e.strerror or e} (existing files are untouched)")


def make_ordinary(path: str | Path) -> None:
    """Gives a file the permissions of one the user created normally (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2) + "\n")


def results_dir() -> Path:
    """Where reports go: the repo's benchmarks/results/ when run from its root, else the current folder."""
    folder = Path("benchmarks/results") if Path("benchmarks").is_dir() else Path(".")
    folder.mkdir(exist_ok=True)
    return folder


def write_report(report: dict, markdown: str, stem: str, json_path: str | Path | None = None,
                 markdown_path: str | Path | None = None) -> tuple[Path, Path]:
    """A report as JSON and markdown, by default `<stem>.json` and `<stem>.md` in `results_dir()`."""
    json_path = Path(json_path or results_dir() / f"{stem}.json")
    markdown_path = Path(markdown_path or results_dir() / f"{stem}.md")
    write_json(json_path, report)
    write_text(markdown_path, markdown)
    return json_path, markdown_path


def slug(text: str) -> str:
    """A file name from a prompt: "Running apple-cat!" -> "running-apple-cat"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "meme"
