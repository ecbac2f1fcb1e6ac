"""The `meme` command: a thin layer over the package. Every option is declared once, as a field of its stage's
options dataclass (name, type, default, range, help: `options.py`); this file only names the commands, derives
their options from those fields and prints results. The options modules import no torch, so that `meme --help` and
a usage error (an unknown option, a missing argument) answer at once; each command imports its stage when it runs.

Errors reach the user as one line starting with `error:`: usage errors and bad input exit 2, a run that went
wrong exits 1 (training, export), Ctrl-C 130. A bug prints one line too, naming MEMESTAR_DEBUG=1, which shows
the traceback.
"""

import functools
import inspect
import json
import os
import sys
from pathlib import Path

import typer

try:  # typer 0.25 and later carry their own click
    from typer._click import exceptions as click_errors
except ImportError:
    import click.exceptions as click_errors

from .bench.options import BenchOptions, LoadOptions
from .errors import MemeError, one_line
from .export.options import ExportOptions
from .media.look import Look
from .media.presets import PRESETS
from .options import cli_parameters, from_cli
from .runtime.options import GenOptions
from .runtime.settings import GenSettings
from .serve.options import ServeOptions
from .tiny.options import DemoOptions, EvalOptions
from .train.options import SubjectOptions, TrainOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="meme-star: tune Stable Diffusion on one clip, then make GIFs of new subjects with its motion.",
)
JSON = typer.Option(False, "--json", help="Print a JSON summary.")
ONLY_THE_TABLE = typer.Option(False, "--quiet", "-q", help="Only the table.")
REPORT_JSON = typer.Option(None, "--json", help="JSON report path (default: benchmarks/results/...).")
REPORT_MARKDOWN = typer.Option(None, "--markdown", help="Markdown report path.")


def with_options(*classes, only: tuple[str, ...] | None = None):
    """A command's own parameters (what no options dataclass declares: `--json`, a report's path), then the options
    that `classes` declare; the command gets them all as keywords, to build its dataclasses with `from_cli`."""

    def wrap(fn):
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.kind is not inspect.Parameter.VAR_KEYWORD
        ]
        taken = {p.name for p in own}
        derived = [p for p in cli_parameters(*classes, only=only) if p.name not in taken]

        @functools.wraps(fn)
        def command(**values):
            return fn(**values)

        command.__signature__ = inspect.Signature(own + derived)
        return command

    return wrap


def _quiet_libraries() -> None:
    import warnings

    import diffusers
    import transformers

    warnings.filterwarnings("ignore", module=r"(huggingface_hub|diffusers|transformers|torch)\b")
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _emit(summary: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        width = max(map(len, summary))
        for key, value in summary.items():
            typer.echo(f"{key:<{width}}  {value}")


def _log(quiet: bool):
    return (lambda *a: None) if quiet else (lambda message: typer.echo(message, err=True))


@app.command()
@with_options(TrainOptions, only=("frames", "size", "start", "stride"))
def clip(
    path: Path = typer.Argument(..., help="Video (mp4, webm, mov), GIF/WebP, or a folder of PNG/JPEG frames."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file: .gif, .mp4 or .webp."),
    fps: float = typer.Option(None, help="Frame rate of the output (default: the frames' own)."),
    format: str = typer.Option(None, help="gif, mp4 or webp (default: from the suffix)."),
    as_json: bool = JSON,
    **values,
):
    """Sample, crop and resize a clip the way `meme train` will see it, and write it out to look at."""
    from .checks import check_fps
    from .files import check_target
    from .media.clips import read_clip
    from .media.writers import media_format, write_media

    check_fps(fps)
    fmt = media_format(out, format)
    check_target(out)
    frames, size = values["frames"], values["size"]
    c = read_clip(path, frames, size, start=values["start"], stride=values["stride"])
    write_media(c.frames, out, fps or c.fps, fmt)
    _emit(
        {
            "output": str(out),
            "frames": len(c.frames),
            "size": size,
            "fps": round(fps or c.fps, 3),
            "source_frames": c.source_frames,
            "indices": c.indices,
        },
        as_json,
    )


@app.command()
@with_options(TrainOptions)
def train(as_json: bool = JSON, **values):
    """Tune the base on one (text, clip) pair: writes a small meme folder for `meme gen`."""
    from .train.command import train_meme

    _quiet_libraries()
    summary = train_meme(from_cli(TrainOptions, values, quiet=values["quiet"] or as_json))
    _emit(summary, as_json)


@app.command("export")
@with_options(ExportOptions)
def export_(
    onnx: bool = typer.Option(True, "--onnx", help="ONNX graphs: always made (engines are built from them)."),
    as_json: bool = JSON,
    **values,
):
    """Export a meme to checked ONNX graphs (text encoder, video UNet with the adapter, VAE decoder) and engines."""
    from .export.command import export_meme

    _quiet_libraries()
    summary = export_meme(from_cli(ExportOptions, values, quiet=values["quiet"] or as_json))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"{'cached' if summary['cached'] else 'exported'} {summary['export']} ({summary['precision']}, "
        f"opset {summary['opset']}, {summary['seconds']} s)"
    )
    for name, g in summary["graphs"].items():
        typer.echo(
            f"  {name:<13} {g['nodes']:>5} nodes {g['megabytes']:>9.2f} MiB   ONNX Runtime vs torch: "
            f"relative {g['relative_error']:.1e} (max abs {g['max_abs_error']:.1e}, tolerance "
            f"{summary['tolerance']:g})"
        )
    if "engines" in summary:
        e = summary["engines"]
        for note in e.get("notes", []):
            typer.echo(f"note: {note}", err=True)
        typer.echo(
            f"engines {e['folder']}"
            + (
                " (cached)"
                if e["cached"]
                else "".join(f"\n  {n:<13} {how} in {e['seconds'][n]} s" for n, how in e["how"].items())
            )
        )


@app.command()
@with_options(GenOptions, GenSettings, Look)
def gen(as_json: bool = JSON, **values):
    """Make a GIF (or MP4/WebP) of a new subject, or of a photo's subject (--image), with the meme's motion."""
    from .runtime.command import run_gen

    _quiet_libraries()
    quiet = values["quiet"]
    o = from_cli(
        GenOptions, values, settings=from_cli(GenSettings, values), look=from_cli(Look, values), quiet=quiet or as_json
    )
    results = run_gen(o, log=_log(quiet))
    if as_json:
        typer.echo(json.dumps(results if o.prompts or o.variants > 1 else results[0], indent=2))
    elif not quiet:
        for r in results:
            typer.echo(
                f"{r['output']}  ({r['bytes'] / 1024:.1f} KiB, {r['frames']} frames, {r['seconds']['total']:.2f} s)"
            )


@app.command()
def check(
    file: Path = typer.Argument(..., help="A GIF, WebP, APNG or WebM file."),
    preset: str = typer.Option(..., help="The chat app to hold it against: " + ", ".join(PRESETS) + "."),
    as_json: bool = JSON,
):
    """Read a file back and report container, codec, canvas, frames, duration, fps, bytes and alpha against a
    chat app's published limits; exit 1 on any breach."""
    from .media.check import breaches, probe
    from .media.presets import get_preset

    limits = get_preset(preset)
    report = probe(file)
    found = breaches(report, limits)
    if as_json:
        typer.echo(
            json.dumps(
                {"file": str(file), "preset": limits.name, **report.to_dict(), "ok": not found, "breaches": found},
                indent=2,
            )
        )
    else:
        _emit({"file": str(file), "preset": f"{limits.name} ({limits.app})", **report.to_dict()}, False)
        for line in found:
            typer.echo(f"breach: {line}", err=True)
        typer.echo(f"{'meets' if not found else 'breaks'} {limits.name}'s limits")
    return 1 if found else 0


@app.command()
@with_options(BenchOptions, LoadOptions)
def bench(
    json_path: Path = REPORT_JSON,
    markdown_path: Path = REPORT_MARKDOWN,
    quiet: bool = ONLY_THE_TABLE,
    serve: bool = typer.Option(
        False,
        "--serve",
        help="Instead: drive `meme serve` on loopback with concurrent "
        "clients (throughput, latency percentiles, batch sizes, 503s).",
    ),
    **values,
):
    """Measure latency, memory and FLOP utilisation per stage, against the eager fp32 baseline (or, with --serve,
    the server's throughput under concurrent clients)."""
    from .bench.command import markdown, run_bench, write_report

    _quiet_libraries()
    if serve:
        from .bench.load import markdown as load_markdown
        from .bench.load import run_load, write_load_report

        report = run_load(
            from_cli(
                LoadOptions,
                values,
                preset=values["preset"],
                steps=values["steps"],
                device=values["device"],
                quiet=quiet,
            ),
            log=_log(quiet),
        )
        paths = write_load_report(report, json_path, markdown_path)
        typer.echo(load_markdown(report))
        if not quiet:
            typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)
        return
    report = run_bench(from_cli(BenchOptions, values), log=_log(quiet))
    paths = write_report(report, json_path, markdown_path)
    typer.echo(markdown(report))
    if not quiet:
        typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)


@app.command()
@with_options(ServeOptions)
def serve(
    ray: bool = typer.Option(False, "--ray", help="Run on Ray Serve (the ray extra) instead: many replicas."),
    **values,
):
    """Serve memes over HTTP for chat apps (FastAPI on uvicorn; --ray for Ray Serve)."""
    o = from_cli(ServeOptions, values).check()
    _quiet_libraries()
    if ray:
        try:
            from .serve.ray_app import serve_on_ray
        except ImportError as e:
            raise MemeError(
                f'meme serve --ray needs the ray extra ({e.name} is missing): pip install "meme-star[ray]"'
            ) from e
        serve_on_ray(o)
        return
    try:
        from .serve.command import serve as run
    except ImportError as e:
        raise MemeError(
            f'meme serve needs the serve extra ({e.name} is missing): pip install "meme-star[serve]"'
        ) from e
    typer.echo(
        f"serving {o.memes} on http://{o.host}:{o.port} (docs at /docs){'' if o.token else ', no token'}", err=True
    )
    run(o)


@app.command()
@with_options(DemoOptions)
def demo(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = JSON,
    **values,
):
    """The whole loop on a bundled model, on a CPU: tune on one clip, make new subjects move the same way."""
    from .tiny.demo import format_table, run_demo

    options = from_cli(DemoOptions, values)
    _quiet_libraries()
    result = run_demo(
        options.out, steps=options.steps, quiet=quiet or as_json, log=_log(quiet or as_json), world_name=options.world
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(format_table(result))
    typer.echo(f"\nGIFs and {result['contact_sheet']} in {options.out}/ ({result['seconds']} s)")


@app.command(name="eval")
@with_options(EvalOptions)
def eval_(
    json_path: Path = REPORT_JSON,
    markdown_path: Path = REPORT_MARKDOWN,
    quiet: bool = ONLY_THE_TABLE,
    **values,
):
    """Measure motion transfer in a tiny world (shapes, emoji): subject read per frame, path against the source."""
    from .files import write_report
    from .tiny.evaluate import evaluate, json_safe, markdown

    options = from_cli(EvalOptions, values).resolved()  # the world's base and motions name the report
    _quiet_libraries()
    report = evaluate(options, log=_log(quiet))
    stem = f"eval-{options.base}-{len(options.motions)}-motions-{report['date']}"
    write_report(json_safe(report), markdown(report), stem, json_path, markdown_path)
    typer.echo(markdown(report))


@app.command()
@with_options(TrainOptions, only=("base_config", "group_norm", "allow_pickle"))
def base(
    reference: str = typer.Argument(
        "random-tiny", help="Hub id, diffusers folder, .safetensors file, tiny, or random-tiny / random-sd15."
    ),
    as_json: bool = JSON,
    **values,
):
    """Load a base model, inflate its UNet to video, and report its fingerprint and parameter counts."""
    from .checks import check_choice
    from .models.base import load_base
    from .models.layout import GROUP_NORM_MODES
    from .models.video_unet import VideoUNet

    group_norm = values["group_norm"]
    check_choice("--group-norm", group_norm, GROUP_NORM_MODES)
    _quiet_libraries()
    b = load_base(reference, config=values["base_config"], allow_pickle=values["allow_pickle"])
    counts = VideoUNet(b.unet, group_norm).parameter_counts()
    _emit(
        {
            "base": reference,
            "fingerprint": b.fingerprint.id,
            "unet_parameters": counts["total"],
            "temporal_parameters": counts["temporal"],
            "trainable_parameters": counts["trainable"],
            "prediction_type": b.scheduler_config.get("prediction_type", "epsilon"),
        },
        as_json,
    )


subject_app = typer.Typer(
    no_args_is_help=True, help="Learned subjects: your own subject from 1 to 4 photos, for every meme of a base."
)
app.add_typer(subject_app, name="subject")


@subject_app.command("learn")
@with_options(SubjectOptions)
def subject_learn(as_json: bool = JSON, **values):
    """Learn a subject from 1 to 4 photos: a word of its own for the base (`meme gen --subject NAME`)."""
    from .train.subject import learn_subject

    _quiet_libraries()
    _emit(learn_subject(from_cli(SubjectOptions, values, quiet=values["quiet"] or as_json)), as_json)


def main(argv: list[str] | None = None) -> int:
    """Runs `meme` with `argv` (default: the command line); returns the exit code. Every failure is one line."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="meme", standalone_mode=False)
        if result == 130:  # typer turns Ctrl-C into an exit code
            typer.echo("error: interrupted", err=True)
        return result if isinstance(result, int) else 0
    except getattr(click_errors, "NoArgsIsHelpError", ()) as e:
        e.show()  # `meme` alone: the help, as asked
        return 0
    except click_errors.UsageError as e:
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx else ""
        typer.echo(f"error: {one_line(e.format_message())}{where}", err=True)
        return e.exit_code
    except click_errors.ClickException as e:
        typer.echo(f"error: {one_line(e.format_message())}", err=True)
        return e.exit_code
    except MemeError as e:
        typer.echo(f"error: {one_line(str(e))}", err=True)
        return e.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("error: interrupted", err=True)
        return 130
    except OSError as e:  # the machine said no (memory maps, devices, descriptors): not a meme-star bug
        where = f": {e.filename}" if e.filename else ""
        typer.echo(f"error: {one_line(e.strerror or str(e))}{where}", err=True)
        return 1
    except Exception as e:
        if os.environ.get("MEMESTAR_DEBUG"):
            raise
        typer.echo(
            f"error: internal error ({type(e).__name__}: {one_line(str(e))[:300]}): a bug in meme-star; "
            f"run again with MEMESTAR_DEBUG=1 for the traceback and report it",
            err=True,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
