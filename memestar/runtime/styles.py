"""Style presets: a prompt template, negative prompt, guidance, chat-app preset and look under one name, from
`styles.toml` beside this file, extended or overridden by a user's file of the same shape (`--styles FILE`)."""

import functools
import string
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..checks import MAX_STYLES_BYTES, check_guidance
from ..errors import MemeError
from ..files import read_small_file
from ..media.look import Look
from ..media.loops import LOOPS
from ..media.presets import PRESETS
from .settings import GenSettings

STYLES_TOML = Path(__file__).with_name("styles.toml")


@dataclass(frozen=True)
class Style:
    name: str
    prompt: str = "{prompt}"
    negative: str | None = None
    guidance: float | None = None
    preset: str | None = None
    sticker: bool = False
    pixel: int | None = None
    loop: str | None = None

    def check(self, where: str) -> "Style":
        def bad(field: str, why: str) -> MemeError:
            return MemeError(f"{where}: style {self.name!r}, {field}: {why}")

        try:
            fields_used = {name for _, name, _, _ in template_parts(self.prompt) if name}
        except ValueError as e:
            raise bad("prompt", f"{e}: write {{prompt}} or {{subject}}, and {{{{ }}}} for a brace") from None
        if not fields_used:
            raise bad("prompt", "must hold {prompt} or {subject}")
        if self.preset is not None and self.preset not in PRESETS:
            raise bad("preset", f"{self.preset!r} is not one of {', '.join(PRESETS)}")
        if self.loop is not None and self.loop not in LOOPS:
            raise bad("loop", f"{self.loop!r} is not one of {', '.join(LOOPS)}")
        if self.guidance is not None:
            check_guidance(self.guidance)
        Look(pixel=self.pixel).check()
        return self

    def prompt_for(self, prompt: str, subject: str | None = None) -> str:
        values = {"prompt": prompt, "subject": subject or prompt}
        return "".join(literal + (values[name] if name else "") for literal, name, _, _ in template_parts(self.prompt))


def template_parts(template: str) -> list[tuple[str, str | None, str, str | None]]:
    """`string.Formatter().parse(template)`, with only `{prompt}` and `{subject}` allowed in braces: no format spec
    (`{prompt:>99999999999}`), no conversion, no attribute or index (`{prompt.__init__}`), nothing nested; a
    ValueError names what is not allowed."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ValueError(f"the braces do not pair ({e})") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in ("prompt", "subject") or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"{shown[:40]} is not allowed")
    return parts


TYPES = {f.name: f.type for f in fields(Style) if f.name != "name"}


def apply_style(
    style: Style, settings: GenSettings, look: Look, preset: str | None, format_given: bool
) -> tuple[GenSettings, Look, str | None]:
    """The style's defaults wherever the user left an option at its own: the negative prompt, the guidance, the
    chat-app preset (not when a format or size was asked for) and the look."""
    settings = replace(
        settings,
        negative=settings.negative or style.negative or "",
        guidance=style.guidance if style.guidance and settings.guidance == GenSettings.guidance else settings.guidance,
    )
    look = replace(
        look,
        sticker=look.sticker or style.sticker,
        pixel=look.pixel or style.pixel,
        loop=style.loop if style.loop and look.loop == Look.loop else look.loop,
    )
    return settings, look, preset or (None if format_given else style.preset)


def _read(path: Path) -> dict[str, Style]:
    try:
        data = tomllib.loads(read_small_file(path, MAX_STYLES_BYTES, "the styles file").decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MemeError(f"{path} is not TOML ({e}): write one [name] table per style") from e
    except RecursionError:
        raise MemeError(f"{path} nests too deep to be a styles file: write one [name] table per style") from None
    styles = {}
    for name, table in data.items():
        if not isinstance(table, dict):
            raise MemeError(f"{path}: {name} is not a [table]: write one [name] table per style")
        unknown = sorted(set(table) - set(TYPES))
        if unknown:
            raise MemeError(f"{path}: style {name!r} has an unknown key {unknown[0]!r}: use {', '.join(TYPES)}")
        for key, value in table.items():
            wanted = {
                "prompt": str,
                "negative": str,
                "guidance": (int, float),
                "preset": str,
                "sticker": bool,
                "pixel": int,
                "loop": str,
            }[key]
            if not isinstance(value, wanted) or (isinstance(value, bool) and key != "sticker"):
                raise MemeError(f"{path}: style {name!r}, {key}: {value!r} is not a {TYPES[key]}")
        styles[name] = Style(name=name, **{k: float(v) if k == "guidance" else v for k, v in table.items()}).check(
            str(path)
        )
    return styles


@functools.cache
def bundled_styles() -> dict[str, Style]:
    """styles.toml beside this file, read once per process (a server asks for a style on every request)."""
    return _read(STYLES_TOML)


def load_styles(extra: Path | None = None) -> dict[str, Style]:
    """The bundled styles, then `extra`'s (a style of the same name replaces the bundled one)."""
    return bundled_styles() | (_read(Path(extra)) if extra else {})


def get_style(name: str, extra: Path | None = None) -> Style:
    styles = load_styles(extra)
    if name not in styles:
        raise MemeError(
            f"--style {name!r} is not a style: use one of {', '.join(styles)}"
            f"{'' if extra else ' (or add it with --styles FILE)'}"
        )
    return styles[name]
