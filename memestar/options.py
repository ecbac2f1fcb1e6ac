"""Each option declared once, as a field of its stage's options dataclass: name, type, default, range and help.

```python
@dataclass
class GenSettings:
    steps: int = option(10, "Denoising steps.", low=1, high=MAX_STEPS, body=True)
```

Everything else is derived from those fields: the CLI's options (`cli_parameters`, typer parameters named and typed
as the fields), the values a command line gave turned back into the dataclass (`from_cli`: lists parsed, one line
on a bad one), and the server's request body (`body_fields`: pydantic fields with the declared ranges and choices,
for `meme serve` and its Ray ingress alike). The dataclasses' own `check()` methods stay the one place that refuses
a bad value with a line naming the fix; the ranges here are those same limits (`checks.py`), given to pydantic and
to the help text.
"""

import dataclasses
import inspect
import typing
from dataclasses import MISSING, dataclass, field
from typing import Literal

from .errors import MemeError

OPTION = "memestar.option"
AS_ON_THE_CLI = object()  # a body default that is the CLI's


@dataclass(frozen=True)
class OptionSpec:
    help: str
    low: float | None = None  # the range a number must lie in, both ends included
    high: float | None = None
    choices: tuple | None = None  # the words it takes (shown in the help; a Literal in the body)
    min_length: int | None = None  # of text, in the body
    max_length: int | None = None
    flags: tuple[str, ...] = ()  # the CLI's names where they are not --field-name ("--meme", "-m"; "--a/--no-a")
    argument: bool = False  # a positional argument on the CLI
    cli: bool = True  # whether the CLI takes it
    body: bool = False  # whether the server's request body takes it
    body_default: object = AS_ON_THE_CLI  # the body's default, where it differs from the CLI's
    separator: str = ","  # a tuple's items in one word on the CLI


def option(default=MISSING, help: str = "", *, factory=None, kw_only=MISSING, **spec):
    """A dataclass field that declares an option (`OptionSpec`'s keywords); `factory` for a mutable default,
    `kw_only` to redeclare a field of a keyword-only base (`BaseSource`) in a subclass."""
    metadata = {OPTION: OptionSpec(help, **spec)}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata, kw_only=kw_only)
    return field(default=default, metadata=metadata, kw_only=kw_only)


@dataclass(frozen=True)
class Declared:
    name: str
    type: object
    default: object  # MISSING for a required one
    spec: OptionSpec

    @property
    def flag(self) -> str:
        return next(
            (f.split("/")[0] for f in self.spec.flags if f.startswith("--")), "--" + self.name.replace("_", "-")
        )


def declared(cls) -> list[Declared]:
    """The options `cls` declares, in field order, those of a keyword-only base (`BaseSource`) last."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in sorted(dataclasses.fields(cls), key=lambda f: f.kw_only is True):
        spec = f.metadata.get(OPTION)
        if spec is None:
            continue
        default = (
            f.default
            if f.default is not MISSING
            else (f.default_factory() if f.default_factory is not MISSING else MISSING)
        )
        out.append(Declared(f.name, hints[f.name], default, spec))
    return out


def _tuple_item(kind) -> type | None:
    """`tuple[int, ...]` -> int; None for anything else."""
    if typing.get_origin(kind) is tuple:
        args = typing.get_args(kind)
        return args[0] if args else str
    return None


def _cli_help(d: Declared) -> str:
    text = d.spec.help
    if d.spec.choices and not all(str(c) in text for c in d.spec.choices):
        text += f" One of: {', '.join(map(str, d.spec.choices))}."
    return text


def _words(value, d: Declared) -> str:
    item = _tuple_item(d.type)
    if item is bool:
        return d.spec.separator.join("on" if v else "off" for v in value)
    return d.spec.separator.join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)


def cli_parameters(*classes, only: tuple[str, ...] | None = None) -> list:
    """Typer parameters for the options of `classes` (the first declaration of a name wins): a tuple becomes one
    word of items (`--gen-steps 4,8,12`), parsed back by `from_cli`."""
    import typer

    params, seen = [], set()
    for cls in classes:
        for d in declared(cls):
            if not d.spec.cli or d.name in seen or (only is not None and d.name not in only):
                continue
            seen.add(d.name)
            default = ... if d.default is MISSING else d.default
            annotation = d.type
            if _tuple_item(d.type) is not None:
                annotation = str
                default = _words(default, d) if default is not ... else ...
            if d.spec.argument:
                info = typer.Argument(default, help=_cli_help(d), show_default=default is not None)
            else:
                info = typer.Option(default, *d.spec.flags, help=_cli_help(d))
            params.append(
                inspect.Parameter(d.name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)
            )
    return params


def _parse_items(text: str, d: Declared) -> tuple:
    item = _tuple_item(d.type)
    words = [w.strip() for w in text.split(d.spec.separator) if w.strip()]
    if item is bool:
        if not words or set(words) - {"on", "off"}:
            raise MemeError(f"{d.flag} {text!r}: use on, off, or on,off to compare both")
        return tuple(dict.fromkeys(w == "on" for w in words))
    try:
        return tuple(item(w) for w in words)
    except ValueError as e:
        what = "whole numbers" if item is int else "numbers"
        raise MemeError(f"{d.flag} {text!r} is not a comma-separated list of {what}") from e


def from_cli(cls, values: dict, **given):
    """`cls` from a command line's `values` (those of its options; a tuple's word parsed), and `given` besides."""
    kwargs = {}
    for d in declared(cls):
        if d.name not in values or not d.spec.cli:
            continue
        value = values[d.name]
        if _tuple_item(d.type) is not None and isinstance(value, str):
            value = _parse_items(value, d)
        kwargs[d.name] = value
    return cls(**{**kwargs, **given})


def body_limits(d: Declared) -> dict:
    """The keywords of a pydantic `Field` (or FastAPI's `Form`) that hold a body's value to the declaration: its
    range, its length, no NaN or infinity, and the help as its description."""
    s = d.spec
    limits = {
        k: v
        for k, v in (("ge", s.low), ("le", s.high), ("min_length", s.min_length), ("max_length", s.max_length))
        if v is not None
    }
    if float in (d.type, *typing.get_args(d.type)):
        limits["allow_inf_nan"] = False
    return {**limits, "description": s.help}


def body_fields(*classes) -> dict:
    """Pydantic `(type, Field)` pairs for `create_model`: the options of `classes` a request body takes, with their
    ranges, lengths and choices (a word the declaration does not list is refused)."""
    from pydantic import Field

    out = {}
    for cls in classes:
        for d in declared(cls):
            if not d.spec.body or d.name in out:
                continue
            default = d.default if d.spec.body_default is AS_ON_THE_CLI else d.spec.body_default
            kind = d.type
            if d.spec.choices:
                kind = Literal[tuple(d.spec.choices)]
                kind = kind | None if default is None else kind
            out[d.name] = (kind, Field(default, **body_limits(d)))
    return out
