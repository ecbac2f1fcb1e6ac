"""Typed JSON files that cross stages (`meme.json`, `export.json`, `engines.json`).

Each file is a dataclass tree. Reading validates the whole tree with pydantic in strict mode (types
exactly as declared, finite numbers, every required key present) and then each record's own `problem()`
(ranges, formats), inner records first; the first problem found becomes one line naming the file and the field. Writing
dumps the dataclasses as indented JSON with sorted keys, atomically.
"""

import dataclasses
import json
from pathlib import Path
from typing import TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError

from .errors import MemeError
from .files import write_text

CONFIG = ConfigDict(strict=True, allow_inf_nan=False)
T = TypeVar("T")


def record(cls: type[T]) -> type[T]:
    """A dataclass whose instances validate strictly when read back from JSON."""
    cls = dataclasses.dataclass(cls)
    cls.__pydantic_config__ = CONFIG
    return cls


class RecordError(MemeError):
    """A record file that exists but does not hold what its format says."""


def _where(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_record(cls: type[T], text: str, path: str | Path, fmt: str, fix: str) -> T:
    """`cls` from JSON `text`, or a `RecordError` naming `path`, the field and `fix`."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, an integer of 5000 digits
        raise RecordError(f"{path} is not valid JSON ({str(e).splitlines()[0]}): {fix}") from e
    if not isinstance(data, dict):
        kind = {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(type(data), "null")
        raise RecordError(f"{path} holds a JSON {kind}, not an object: {fix}")
    if data.get("format") != fmt:
        raise RecordError(f"{path} has format {data.get('format')!r}, this meme-star reads {fmt!r}: {fix}")
    try:
        value = TypeAdapter(cls).validate_json(text)
    except ValidationError as e:
        first = e.errors()[0]
        raise RecordError(f"{path}: field {_where(first['loc'])}: {first['msg'].lower()}: {fix}") from e
    problem = first_problem(value)
    if problem:
        raise RecordError(f"{path}: {problem}: {fix}")
    return value


def first_problem(value) -> str | None:
    """What the first record in the tree says is wrong with it (its `problem()`), inner records first."""
    if dataclasses.is_dataclass(value):
        inner = [getattr(value, f.name) for f in dataclasses.fields(value)]
    elif isinstance(value, (list, dict)):
        inner = list(value.values()) if isinstance(value, dict) else value
    else:
        return None
    for item in inner:
        problem = first_problem(item)
        if problem:
            return problem
    return value.problem() if dataclasses.is_dataclass(value) and hasattr(value, "problem") else None


def read_record(cls: type[T], path: str | Path, fmt: str, fix: str) -> T:
    try:
        text = Path(path).read_text()
    except UnicodeDecodeError as e:
        raise RecordError(f"{path} is not text: {fix}") from e
    except OSError as e:
        raise RecordError(f"cannot read {path}: {e.strerror or e}") from e
    return parse_record(cls, text, path, fmt, fix)


def record_json(value) -> str:
    return json.dumps(dataclasses.asdict(value), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_record(value, path: str | Path) -> None:
    """Writes `value` atomically, after checking that it reads back: a file meme-star writes, it can read."""
    text = record_json(value)
    parse_record(type(value), text, path, value.format, "a bug in meme-star: please report it")
    write_text(path, text)
