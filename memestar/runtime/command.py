"""`meme gen`: prompts in, one GIF/MP4/WebP file each (or `--variants` each) out, through one loaded meme.

Resolves what to make before anything loads (the prompts, each output's path and format, every setting),
so bad input costs no model load; then generates in batches (`Meme.generate_batch`) and writes each file
atomically.
"""

import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from ..checks import check_max_kb, check_prompt, check_variants
from ..errors import MemeError
from ..files import check_target, read_small_file, slug, write_error
from ..formats.meme_folder import read_meme
from ..media.loops import make_loop, seam_score
from ..media.presets import get_preset
from ..media.writers import media_format, write_bytes
from ..prompts import subject_prompt
from ..sampling.batch import MAX_BATCH
from .meme import Meme
from .options import GenOptions
from .settings import follows, still_action, still_negative, variant_requests
from .still import cut_out, read_still
from .styles import Style, apply_style, get_style
from .subjects import find_subject, learned_words, subject_for

MAX_PROMPTS = 10_000
MAX_PROMPTS_FILE_BYTES = 4 * 2**20


def read_prompts(prompt: str | None, prompts: Path | None) -> list[str]:
    if (prompt is None) == (prompts is None):
        raise MemeError("give one prompt, or --prompts FILE with one prompt per line (not both)")
    if prompts is None:
        return [check_prompt(prompt)]
    try:
        text = read_small_file(prompts, MAX_PROMPTS_FILE_BYTES, "the prompts file").decode("utf-8")
    except UnicodeDecodeError as e:
        raise MemeError(f"prompts file {prompts} is not UTF-8 text: write one prompt per line") from e
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise MemeError(f"prompts file {prompts} has no prompts: write one per line")
    if len(lines) > MAX_PROMPTS:
        raise MemeError(f"prompts file {prompts} has {len(lines)} prompts, over {MAX_PROMPTS}: split it")
    return [check_prompt(line) for line in lines]


def output_paths(lines: list[str], out: Path | None, fmt: str, many: bool, variants: int = 1) -> list[Path]:
    """Where each clip's file goes (`variants` per prompt, `-v1`, `-v2`, ... after the first); refuses targets
    that exist and are not files before any work."""
    if not many:
        first = out or Path(f"{slug(lines[0])}.{fmt}")
        targets = [first] + [first.with_name(f"{first.stem}-v{k}{first.suffix}") for k in range(1, variants)]
        return [check_target(t) for t in targets]
    folder = out or Path(".")
    if folder.exists() and not folder.is_dir():
        raise MemeError(f"with --prompts, -o names a folder, but {folder} is a file: choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, folder) from e
    targets = [
        folder / f"{i:03d}-{slug(p)}{f'-v{k}' if k else ''}.{fmt}" for i, p in enumerate(lines) for k in range(variants)
    ]
    return [check_target(t) for t in targets]


def with_style(o: GenOptions, style: Style) -> GenOptions:
    """`o` with the style's defaults wherever the user left the option at its own default."""
    settings, look, preset = apply_style(
        style, o.settings, o.look, o.preset, format_given=o.format is not None or o.max_kb is not None
    )
    return replace(o, settings=settings, look=look, preset=preset)


def output_format(o: GenOptions) -> str:
    """The output's suffix (without the dot): the preset's, the format's, the file's, or gif."""
    single_file = o.out is not None and o.prompts is None and o.out.suffix
    if o.preset is not None:
        preset = get_preset(o.preset)
        if o.format is not None or o.max_kb is not None:
            raise MemeError(f"--preset {preset.name} fixes the format and the size: drop --format and --max-kb")
        if single_file and o.out.suffix.lower() != preset.suffix:
            raise MemeError(
                f"--preset {preset.name} writes {preset.container} ({preset.suffix}): name the output "
                f"{o.out.with_suffix(preset.suffix)}"
            )
        return preset.suffix.lstrip(".")
    return media_format(o.out, o.format) if single_file else media_format(f"clip.{o.format or 'gif'}")


def run_gen(o: GenOptions, log=print) -> list[dict]:
    """Generates every prompt and writes its file; returns one summary per output. `log` gets the notes."""
    style = get_style(o.style, o.styles) if o.style else None
    manifest = read_meme(o.meme, verify_files=False)  # its subject template and size; Meme.load checks the files
    still, subject_words = None, o.subject
    folder = find_subject(o.subjects, o.subject) if o.subject is not None else None
    learned = None if folder is None else subject_for(manifest, folder, o.meme.name)  # another base's: refused now
    if o.subject is not None:
        if o.prompt is not None or o.prompts is not None:
            raise MemeError("give a prompt, --prompts or --subject, not more than one")
        if learned is not None:
            subject_words = learned_words(manifest, learned[0])
        lines = [check_prompt(subject_prompt(manifest.prompt, manifest.template, subject_words))]
    elif o.image is not None and o.prompt is None and o.prompts is None:
        lines = [still_action(manifest, o.meme.name)]
    else:
        lines = read_prompts(o.prompt, o.prompts)
    # files are named after the prompt (a learned subject by its name), not the style's words around it
    names = [line.replace(subject_words, o.subject) for line in lines] if learned else lines
    if o.image is not None:
        still_action(manifest, o.meme.name)  # a meme with a subject track to place it on, before anything loads
        unnamed = o.prompt is None and o.prompts is None and o.subject is None  # prompted with the meme's action
        still = cut_out(read_still(o.image), o.image.name)
        names = [f"{o.image.stem}-{line}" for line in lines]
    if style is not None:
        lines = [check_prompt(style.prompt_for(line, subject_words)) for line in lines]
        o = with_style(o, style)
    if still is not None and unnamed:
        o = replace(o, settings=still_negative(manifest, o.settings))
    o.settings.check()
    follows(manifest, o.settings, o.meme.name)  # --follow on with no track: refused before the load
    check_variants(o.variants)
    check_max_kb(o.max_kb)
    fmt = output_format(o)
    requests = [r for line in lines for r in variant_requests(line, o.settings, o.variants, still, learned)]
    o.look.check(get_preset(o.preset).side if o.preset else manifest.size, fmt)  # before anything loads
    targets = output_paths(names, o.out, fmt, many=o.prompts is not None, variants=o.variants)
    meme = Meme.load(
        o.meme,
        base=o.base,
        device=o.device,
        precision=o.precision,
        backend=o.backend,
        base_config=o.base_config,
        allow_pickle=o.allow_pickle,
        compile=o.compile,
    )
    results = []
    with tqdm(total=len(requests), desc="generating", unit="clip", disable=o.quiet or len(requests) == 1) as bar:
        for k in range(0, len(requests), MAX_BATCH):
            for g, target in zip(meme.generate_batch(requests[k : k + MAX_BATCH]), targets[k : k + MAX_BATCH]):
                t = time.perf_counter()
                data, note = g.encode_for(o.preset, o.look) if o.preset else g.encode(fmt, o.max_kb, o.look)
                write_bytes(data, target)
                g.seconds["encode"] = time.perf_counter() - t
                g.seconds["total"] += g.seconds["encode"]
                notes = g.warnings + ([note] if note else [])
                for line in notes:
                    log(f"note: {line}")
                results.append(
                    {
                        "prompt": g.prompt,
                        "output": str(target),
                        "bytes": len(data),
                        "loop": o.look.loop,
                        "loop_seam": round(seam_score(make_loop(g.frames, o.look.loop)), 3),
                        "frames": len(g.frames),
                        "size": g.frames.shape[1],
                        "fps": g.fps,
                        **g.settings,
                        "batch_size": g.batch_size,
                        "seconds": {k: round(v, 4) for k, v in g.seconds.items()},
                        "notes": notes,
                    }
                )
                bar.update(1)
    return results
