"""`meme gen`'s options, declared once (`options.py`), beside the backends and store bounds they name: light, so that
the CLI and the server read them without torch. How a clip is sampled is `settings.py`."""

from dataclasses import dataclass, field
from pathlib import Path

from ..checks import MAX_KB, MAX_PROMPT_CHARS, MAX_VARIANTS, MIN_KB
from ..media.look import Look
from ..media.presets import PRESETS
from ..media.writers import ENCODERS
from ..models.base_source import BaseSource
from ..options import option
from .settings import GenSettings
from .styles import load_styles

BACKENDS = ("auto", "torch", "ort", "trt")
DEFAULT_MAX_MEMES = 64
DEFAULT_MAX_BYTES = 4 * 2**30  # adapters and inversions held on the device


@dataclass
class GenOptions(BaseSource):
    meme: Path = option(help="Meme folder made by `meme train`.", flags=("--meme", "-m"))
    prompt: str | None = option(
        None,
        "What to show, with the meme's motion (or use --prompts).",
        argument=True,
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        body=True,
    )
    prompts: Path | None = option(None, "A text file with one prompt per line: one output each.")
    out: Path | None = option(
        None, "Output file (default: <prompt>.gif); a folder with --prompts.", flags=("-o", "--out")
    )
    format: str | None = option(
        None,
        "gif, mp4 or webp (default: from the suffix, else gif).",
        choices=tuple(ENCODERS),
        body=True,
        body_default="gif",
    )
    settings: GenSettings = field(default_factory=GenSettings)
    variants: int = option(
        1, "Clips per prompt, seeds seed, seed+1, ... (files -v1, -v2, ...).", low=1, high=MAX_VARIANTS, body=True
    )
    max_kb: float | None = option(
        None, "Fit the file under this many KiB (fewer colours, then smaller).", low=MIN_KB, high=MAX_KB, body=True
    )
    preset: str | None = option(
        None,
        "Write what a chat app takes as it is: " + ", ".join(PRESETS) + " (container, "
        "canvas, timing and byte budget; `meme check` reads it back).",
        choices=tuple(PRESETS),
        body=True,
    )
    look: Look = field(default_factory=Look)
    subject: str | None = option(
        None,
        "Instead of a prompt: the meme's own prompt with this subject (\"running "
        '{apple-cat}" + blueberry-elephant -> "running blueberry-elephant"), or a learned subject\'s name '
        "(see --subjects).",
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        body=True,
    )
    image: Path | None = option(
        None,
        "A photo whose subject the meme animates with its motion (PNG, JPEG, WebP, ...: its "
        "transparency, else a plain background, is cut away; else it is placed whole); the prompt may "
        "then be left out (the meme's action alone).",
    )
    subjects: Path = option(
        Path("subjects"),
        "Folder of learned subjects (`meme subject learn`): --subject NAME is the one learned as NAME when it is "
        "there.",
    )
    # the body takes the bundled styles; the CLI also those of a --styles file
    style: str | None = option(
        None,
        "A style preset: " + ", ".join(load_styles()) + " (prompt template, negative "
        "prompt, guidance, chat-app preset and look).",
        choices=tuple(load_styles()),
        body=True,
    )
    styles: Path | None = option(None, "A TOML file of more styles, keyed as the bundled styles.toml.")
    backend: str = option(
        "auto",
        "torch, ort (ONNX Runtime), trt (TensorRT), or auto: the fastest one the meme's exports allow here.",
        choices=BACKENDS,
    )
    compile: bool = option(
        False,
        "torch.compile the UNet: the first process compiles each shape, later ones read the kernels from the cache.",
    )
    quiet: bool = option(False, "No progress bar or notes.", flags=("--quiet", "-q"))
