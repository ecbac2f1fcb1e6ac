"""The limits on what users pass in, each in one place, and the one-line refusals that name the fix.

Every stage's options call these before any work starts: a bad number is refused before minutes of
loading, not by a traceback half way.
"""

import math
import re

from .errors import MemeError

MAX_FRAMES = 128  # a chat clip is 16-24 frames; more would not fit in memory at SD's sizes anyway
MAX_SIZE = 1024  # pixels per side: SD1.x is trained at 512, and 1024 already needs ~16x the memory
MIN_FPS, MAX_FPS = 0.5, 100.0  # GIF delays are counted in hundredths of a second
MAX_SEED = 2**32 - 1
MAX_GUIDANCE = 50.0  # far above any useful scale; beyond it fp16/bf16 activations overflow to black frames
MAX_LR = 1.0
MAX_STEPS = 500  # denoising steps (a clip sampled sparsely from a long video would otherwise crawl)
MAX_TRAIN_STEPS = 100_000
MAX_INVERSION_STEPS = 1000
MAX_VARIANTS = 8  # one batch
MIN_KB, MAX_KB = 0.01, 1e6  # --max-kb: a byte budget
MAX_CACHE_INTERVAL = 8  # deep features older than this many steps are far from the step that reuses them
# What a clip or animation from a user may declare, held before decoding (media/source.py):
MAX_SOURCE_PIXELS = 4096 * 4096  # one frame's canvas: above 4K UHD (3840 x 2160)
MAX_SOURCE_SECONDS = 600.0  # display time: a meme's motion is seconds long; cut a longer video first
MAX_SOURCE_FRAMES = 36_000  # stored frames: 10 minutes at 60 fps
# canvas x frames a whole decode produces: Pillow (GIF, WebP, APNG) on one core decodes noise at 72 / 31 M pixels
# a second (GIF / WebP, 1024 px, this CPU, 2026-12-04), so 15 / 35 s at most; ffmpeg's threaded decoders (videos)
# take 2 min of 1080p at 60 fps
MAX_DECODE_PIXELS = 2**30
MAX_VIDEO_DECODE_PIXELS = 2**34
# A still to animate (`meme gen --image`, the server's gen upload): a phone photo is 2-12 MB; its canvas is held to
# MAX_SOURCE_PIXELS like a clip's frame, and only its first frame is decoded
MAX_STILL_BYTES = 16 * 2**20
MAX_STYLES_BYTES = 256 * 1024  # a styles file (the bundled one is 1.4 KB): read whole, so capped
MAX_PROMPT_CHARS = 1000  # CLIP reads 77 tokens; a longer text is a mistake or an attack, not a prompt
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
# a server's ids, matched whole (fullmatch: "$" would let a trailing newline through): a meme's, a training job's
MEME_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
JOB_ID_PATTERN = re.compile(r"[0-9a-f]{32}")
# a learned subject's name (`meme subject learn --name`), matched whole: its token in prompts is <name>
SUBJECT_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
MAX_SUBJECT_PHOTOS = 4  # the 1 to 4: a subject from a few photos, not a dataset
MAX_LEARNED_PER_PROMPT = 4  # learned subjects one prompt names, on an export (its text encoder's `learned` rows)


def check_int(name: str, value, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise MemeError(f"{name} is {value}: it must be a whole number from {low} to {high}{hint}")
    return value


def check_float(name: str, value, low: float, high: float, hint: str = "") -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise MemeError(f"{name} is {value}: it must be a number from {low:g} to {high:g}{hint}")
    return float(value)


def check_frames(frames: int) -> int:
    return check_int("--frames", frames, 1, MAX_FRAMES)


def check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 8 or size > MAX_SIZE:
        raise MemeError(
            f"size {size} is not a multiple of 8 from 8 to {MAX_SIZE} (the VAE works in 8-pixel cells): "
            f"use e.g. 128 or 256"
        )
    return size


def check_fps(fps: float | None) -> float | None:
    return None if fps is None else check_float("--fps", fps, MIN_FPS, MAX_FPS)


def check_seed(seed: int) -> int:
    return check_int("--seed", seed, 0, MAX_SEED)


def check_steps(steps: int, name: str = "--steps", high: int = MAX_STEPS) -> int:
    return check_int(name, steps, 1, high)


def check_guidance(guidance: float) -> float:
    if isinstance(guidance, (int, float)) and math.isfinite(guidance) and guidance < 1:
        raise MemeError(
            f"--guidance {guidance:g} is below 1: use 1 for no guidance (the prompt alone) or a scale "
            f"above 1 such as 7.5"
        )
    return check_float("--guidance", guidance, 1.0, MAX_GUIDANCE, " (1 means no guidance; 5 to 10 is usual)")


def check_guidance_until(until: float) -> float:
    return check_float(
        "--guidance-until", until, 0.0, 1.0, " (0 guides every step; 0.5 the steps above half the noise schedule)"
    )


def check_cache_interval(interval: int) -> int:
    return check_int("--cache-interval", interval, 1, MAX_CACHE_INTERVAL, " (1 runs every step whole)")


def check_lr(lr: float) -> float:
    return check_float("--lr", lr, 0.0, MAX_LR, " (3e-5 is usual for SD, 1e-3 for the tiny model)")


def check_variation(variation: float) -> float:
    return check_float("--variation", variation, 0.0, 1.0, " (0 keeps the stored inversion, 1 is fresh noise)")


def check_strength(strength: float) -> float:
    return check_float("--strength", strength, 0, 1, " (0 keeps the still as placed, 1 redraws all of it)")


def check_variants(variants: int) -> int:
    return check_int("--variants", variants, 1, MAX_VARIANTS)


def check_max_kb(max_kb: float | None) -> float | None:
    return None if max_kb is None else check_float("--max-kb", max_kb, MIN_KB, MAX_KB)


def check_device(device: str | None) -> str | None:
    if device is not None and not DEVICE_PATTERN.match(device):
        raise MemeError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N")
    return device


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise MemeError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_prompt(prompt: str, how: str = 'say what the meme should show, e.g. "running blueberry-elephant"') -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise MemeError(f"the prompt is empty: {how}")
    plain_text(prompt, "the prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise MemeError(
            f"the prompt is {len(prompt)} characters, over {MAX_PROMPT_CHARS}: CLIP reads about 77 "
            f"tokens, so shorten it"
        )
    return prompt


def plain_text(text: str, what: str) -> str:
    """Refuses text with a NUL, or with bytes that were not UTF-8 (a shell's `$'a cat \\xff'` reaches Python as a
    lone surrogate, which no tokenizer, font or JSON encoder takes)."""
    if "\x00" in text:
        raise MemeError(f"{what} holds a NUL character: pass plain text")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise MemeError(f"{what} is not valid UTF-8 (character {e.start + 1}): pass UTF-8 text") from None
    return text


def check_subject_name(name: str) -> str:
    if not isinstance(name, str) or not SUBJECT_NAME_PATTERN.fullmatch(name):
        raise MemeError(
            f"subject name {name!r}: use 1 to 64 lowercase letters, digits or '-', starting with a letter or digit, "
            f"e.g. my-cat"
        )
    return name
