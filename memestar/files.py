"""Writing files so that an interrupted write never leaves a half file under the real name."""

import errno
import json
import os
import re
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path

from .errors import MemeError


def check_target(path: str | Path) -> Path:
    """Refuses an output path that exists and is not a regular file (a folder, a device, a FIFO, a symlink):
    writing there would replace it, or write into it."""
    path = Path(path)
    if path.is_symlink():
        raise MemeError(f"output {path} is a symbolic link: name the file itself, or another output path")
    if path.is_dir():
        raise MemeError(f"output {path} is a folder: name a file in it, e.g. {path / 'out.gif'}")
    if path.exists() and not path.is_file():
        raise MemeError(f"output {path} is not a regular file (a device or a pipe): choose a file path")
    if not path.parent.is_dir():
        raise MemeError(f"cannot write {path}: folder {path.parent} does not exist")
    return path


@contextmanager
def atomic_path(path: str | Path):
    """Yields a temporary path beside `path` (same suffix); renames it into place if the block succeeds. A
    failed write (full disk, read-only file system) is one line, and whatever `path` held is untouched."""
    path = check_target(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")  # per process: two writers never share it
    try:
        yield tmp
        make_ordinary(tmp)  # some writers create private files; outputs are ordinary files
        os.replace(tmp, path)
    except OSError as e:
        raise write_error(e, path) from e
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def save_safetensors(tensors: dict, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file whose bytes depend only on the tensors and metadata: safetensors itself writes the
    metadata in a per-process hash order, so identical runs would give files with different sha256."""
    from safetensors.torch import save

    data = save({k: t.contiguous() for k, t in tensors.items()}, metadata=metadata)
    n = int.from_bytes(data[:8], "little")
    header = json.dumps(json.loads(data[8 : 8 + n]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)  # the data that follows stays 8-byte aligned, as safetensors writes it
    with atomic_path(path) as tmp:
        tmp.write_bytes(len(header).to_bytes(8, "little") + header + data[8 + n :])


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
    if e.errno == errno.EROFS:
        return MemeError(f"cannot write {where}: the file system is read-only; choose another output path")
    if e.errno in (errno.EACCES, errno.EPERM):
        return MemeError(f"cannot write {where}: permission denied; choose another output path")
    return MemeError(f"cannot write {where}: {e.strerror or e} (existing files are untouched)")


def make_ordinary(path: str | Path) -> None:
    """Gives a file the permissions of one the user created normally (0666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def results_dir() -> Path:
    """Where reports go: the repo's benchmarks/results/ when run from its root, else the current folder."""
    folder = Path("benchmarks/results") if Path("benchmarks").is_dir() else Path(".")
    folder.mkdir(exist_ok=True)
    return folder


def write_report(
    report: dict, markdown: str, stem: str, json_path: str | Path | None = None, markdown_path: str | Path | None = None
) -> tuple[Path, Path]:
    """A report as JSON and markdown, by default `<stem>.json` and `<stem>.md` in `results_dir()`."""
    json_path = Path(json_path or results_dir() / f"{stem}.json")
    markdown_path = Path(markdown_path or results_dir() / f"{stem}.md")
    write_json(json_path, report)
    write_text(markdown_path, markdown)
    return json_path, markdown_path


def slug(text: str) -> str:
    """A file name from a prompt: "Running apple-cat!" -> "running-apple-cat"."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "meme"


def read_small_file(path: Path, cap: int, what: str) -> bytes:
    """The bytes of the regular file at `path`, at most `cap`: a FIFO, a device (/dev/zero) or a folder is refused
    at once (opened without blocking, checked on the open file, so it cannot be swapped between)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise MemeError(f"cannot read {what} {path}: {e.strerror or e}") from e
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise MemeError(f"{what} {path} is not a regular file (a pipe, a device or a folder): name a file")
        if info.st_size > cap:
            raise MemeError(f"{what} {path} is {info.st_size:,} bytes, over the cap of {cap:,}: is it the right file?")
        with open(fd, "rb", closefd=False) as f:
            return f.read(cap)
    finally:
        os.close(fd)
