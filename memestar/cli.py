"""The `meme` command: a thin layer over the package. Every command's work, and every option's default, lives
in its stage's options dataclass; this file only names the options and prints results.

Errors reach the user as one line starting with `error:`: usage errors and bad input exit 2, a run that went
wrong exits 1 (training, export), Ctrl-C 130. A bug prints one line too, naming MEMESTAR_DEBUG=1, which shows
the traceback.
"""

import json
import os
import sys
from pathlib import Path

import typer

try:  # typer 0.25 and later carry their own click
    from typer._click import exceptions as click_errors
except ImportError:
    import click.exceptions as click_errors

from .bench.load import LoadOptions
from .bench.run import BenchOptions
from .device import DEFAULT_DEVICE
from .errors import MemeError, one_line
from .export.meme import ExportOptions
from .media.look import Look
from .media.presets import PRESETS
from .runtime.gen import GenOptions
from .runtime.meme import LAYOUT_VARIATION, MIX_VARIATION, VARIANTS_VARIATION, GenSettings
from .serve.options import TOKEN_ENV, ServeOptions
from .tiny.demo import DEMO_OUT, DEMO_STEPS
from .tiny.evaluate import EvalOptions
from .train.meme import DEFAULT_BASE, TrainOptions

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="meme-star: tune Stable Diffusion on one clip, then make GIFs of new subjects with its motion.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or notes.")
JSON = typer.Option(False, "--json", help="Print a JSON summary.")
DEVICE = typer.Option(DEFAULT_DEVICE, help="auto, cpu, cuda or cuda:N.")
BASE_CONFIG = typer.Option(None, help="Diffusers folder with the configs for a single-file base.")
ALLOW_PICKLE = typer.Option(False, help="Allow pickled .ckpt/.bin weights (unpickling runs code).")
MOVED_BASE = typer.Option(None, help="Where the meme's base is now, if it moved (must be the same weights).")


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


def _numbers(name: str, text: str, kind: type = int) -> tuple:
    try:
        return tuple(kind(c) for c in text.split(",") if c.strip())
    except ValueError as e:
        what = "whole numbers" if kind is int else "numbers"
        raise MemeError(f"{name} {text!r} is not a comma-separated list of {what}") from e


def _switches(name: str, text: str) -> tuple[bool, ...]:
    """"on", "off", "on,off" -> (True,), (False,), (True, False)."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    if not words or set(words) - {"on", "off"}:
        raise MemeError(f"{name} {text!r}: use on, off, or on,off to compare both")
    return tuple(dict.fromkeys(w == "on" for w in words))


def _log(quiet: bool):
    return (lambda *a: None) if quiet else (lambda message: typer.echo(message, err=True))


@app.command()
def clip(
    path: Path = typer.Argument(..., help="Video (mp4, webm, mov), GIF/WebP, or a folder of PNG/JPEG frames."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file: .gif, .mp4 or .webp."),
    frames: int = typer.Option(TrainOptions.frames, help="Number of frames to take."),
    size: int = typer.Option(TrainOptions.size, help="Square side in pixels (a multiple of 8)."),
    start: int = typer.Option(TrainOptions.start, help="First frame."),
    stride: int = typer.Option(TrainOptions.stride, help="Take every N-th frame (default: spread evenly)."),
    fps: float = typer.Option(None, help="Frame rate of the output (default: the frames' own)."),
    format: str = typer.Option(None, help="gif, mp4 or webp (default: from the suffix)."),
    as_json: bool = JSON,
):
    """Sample, crop and resize a clip the way `meme train` will see it, and write it out to look at."""
    from .checks import check_fps
    from .files import check_target
    from .media.clips import read_clip
    from .media.writers import media_format, write_media

    check_fps(fps)
    fmt = media_format(out, format)
    check_target(out)
    c = read_clip(path, frames, size, start=start, stride=stride)
    write_media(c.frames, out, fps or c.fps, fmt)
    _emit({"output": str(out), "frames": len(c.frames), "size": size, "fps": round(fps or c.fps, 3),
           "source_frames": c.source_frames, "indices": c.indices}, as_json)


@app.command()
def train(
    clip: Path = typer.Argument(..., help="The clip: a video (mp4, webm, mov), GIF/WebP, or a folder of frames."),
    text: str = typer.Option(..., "--text", "-t", help="What the clip shows, e.g. \"running {apple-cat}\" (braces "
                             "mark the subject that `meme gen --subject` replaces; without them it is guessed)."),
    base: str = typer.Option(DEFAULT_BASE, help="Base model: Hub id, diffusers folder, .safetensors file, tiny, "
                             "or random-tiny / random-sd15."),
    out: Path = typer.Option(TrainOptions.out, help="Meme folder (default: memes/<prompt>)."),
    frames: int = typer.Option(TrainOptions.frames, help="Frames taken from the clip."),
    size: int = typer.Option(TrainOptions.size, help="Square side in pixels (a multiple of 8)."),
    start: int = typer.Option(TrainOptions.start, help="First frame of the clip."),
    stride: int = typer.Option(TrainOptions.stride, help="Take every N-th frame (default: spread evenly)."),
    steps: int = typer.Option(TrainOptions.steps, help="Tuning steps."),
    lr: float = typer.Option(TrainOptions.lr, help="AdamW learning rate."),
    precision: str = typer.Option(TrainOptions.precision, help="auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, "
                                  "fp32."),
    seed: int = typer.Option(TrainOptions.seed, help="Seed for timesteps and noise."),
    resume: bool = typer.Option(TrainOptions.resume, help="Continue an interrupted run from its checkpoint."),
    force: bool = typer.Option(TrainOptions.force, help="Replace a meme or an unfinished run in the output folder."),
    checkpoint_every: int = typer.Option(TrainOptions.checkpoint_every, help="Write a resumable checkpoint every N "
                                         "steps (0: only on Ctrl-C)."),
    group_norm: str = typer.Option(TrainOptions.group_norm, help="GroupNorm statistics: per-frame or frames."),
    frame_positions: bool = typer.Option(TrainOptions.frame_positions, "--frame-positions/--no-frame-positions",
                                         help="Temporal attention sees each frame's index (AnimateDiff's sinusoidal "
                                         "encoding), so the meme learns where the subject is when."),
    motion_loss: str = typer.Option(TrainOptions.motion_loss, help="What tuning minimises: mse (every frame), "
                                    "debiased (MotionDirector: appearance shared by frames down-weighted), residual "
                                    "(VMC: frame-to-frame differences), or weighted together: mse=1,debiased=1."),
    tune: str = typer.Option(TrainOptions.tune, help="What tuning changes: all (Tune-A-Video: the attention queries "
                             "and the temporal attention) or temporal (the temporal attention alone)."),
    gradient_checkpointing: bool = typer.Option(TrainOptions.gradient_checkpointing,
                                                "--gradient-checkpointing/--no-gradient-checkpointing",
                                                help="Recompute activations to save memory (default: on for GPUs)."),
    inversion_steps: int = typer.Option(TrainOptions.inversion_steps, help="DDIM steps of the clip's inversion."),
    device: str = DEVICE,
    base_config: str = BASE_CONFIG,
    allow_pickle: bool = ALLOW_PICKLE,
    quiet: bool = QUIET,
    as_json: bool = JSON,
):
    """Tune the base on one (text, clip) pair: writes a small meme folder for `meme gen`."""
    from .train.meme import train_meme

    _quiet_libraries()
    summary = train_meme(TrainOptions(
        clip=clip, prompt=text, base=base, out=out, frames=frames, size=size, start=start, stride=stride,
        steps=steps, lr=lr, precision=precision, seed=seed, resume=resume, force=force,
        checkpoint_every=checkpoint_every, group_norm=group_norm, frame_positions=frame_positions,
        motion_loss=motion_loss, tune=tune,
        gradient_checkpointing=gradient_checkpointing,
        inversion_steps=inversion_steps, device=device, base_config=base_config, allow_pickle=allow_pickle,
        quiet=quiet or as_json))
    _emit(summary, as_json)


@app.command("export")
def export_(
    meme: Path = typer.Argument(..., help="Meme folder made by `meme train`."),
    onnx: bool = typer.Option(True, "--onnx", help="ONNX graphs: always made (engines are built from them)."),
    trt: bool = typer.Option(ExportOptions.trt, "--trt", help="Also FP16 TensorRT engines (trt extra, NVIDIA GPU)."),
    precision: str = typer.Option(ExportOptions.precision, help="fp32, fp16, or auto (fp16 on a GPU, fp32 on a CPU)."),
    opset: int = typer.Option(ExportOptions.opset, help="ONNX opset, 18 or higher (18 runs in ORT and TensorRT)."),
    force: bool = typer.Option(ExportOptions.force, help="Export again even when an export of the same inputs exists."),
    device: str = DEVICE,
    base: str = MOVED_BASE,
    base_config: str = BASE_CONFIG,
    allow_pickle: bool = ALLOW_PICKLE,
    quiet: bool = QUIET,
    as_json: bool = JSON,
):
    """Export a meme to checked ONNX graphs (text encoder, video UNet with the adapter, VAE decoder) and engines."""
    from .export.meme import export_meme

    _quiet_libraries()
    summary = export_meme(ExportOptions(meme=meme, trt=trt, precision=precision, opset=opset, force=force,
                                        device=device, base=base, base_config=base_config, allow_pickle=allow_pickle,
                                        quiet=quiet or as_json))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{'cached' if summary['cached'] else 'exported'} {summary['export']} ({summary['precision']}, "
               f"opset {summary['opset']}, {summary['seconds']} s)")
    for name, g in summary["graphs"].items():
        typer.echo(f"  {name:<13} {g['nodes']:>5} nodes {g['megabytes']:>9.2f} MiB   ONNX Runtime vs torch: "
                   f"relative {g['relative_error']:.1e} (max abs {g['max_abs_error']:.1e}, tolerance "
                   f"{summary['tolerance']:g})")
    if "engines" in summary:
        e = summary["engines"]
        for note in e.get("notes", []):
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"engines {e['folder']}" + (" (cached)" if e["cached"] else
                                                  "".join(f"\n  {n:<13} {how} in {e['seconds'][n]} s"
                                                          for n, how in e["how"].items())))


@app.command()
def gen(
    prompt: str = typer.Argument(None, help="What to show, with the meme's motion (or use --prompts)."),
    meme: Path = typer.Option(..., "--meme", "-m", help="Meme folder made by `meme train`."),
    out: Path = typer.Option(GenOptions.out, "-o", "--out", help="Output file (default: <prompt>.gif); a folder "
                             "with --prompts."),
    format: str = typer.Option(GenOptions.format, help="gif, mp4 or webp (default: from the suffix, else gif)."),
    steps: int = typer.Option(GenSettings.steps, help="Denoising steps."),
    guidance: float = typer.Option(GenSettings.guidance, help="Classifier-free guidance scale; 1 means no guidance."),
    negative: str = typer.Option(GenSettings.negative, help="Negative prompt."),
    seed: int = typer.Option(GenSettings.seed, help="Seed of the start noise (with --start layout, mix or noise, "
                             "or a --variation)."),
    sampler: str = typer.Option(GenSettings.sampler, help="ddim or dpm++."),
    start: str = typer.Option(GenSettings.start, help="inversion (keeps the clip's motion), layout (its coarse "
                              "layout, the detail from the seed's noise: keeps where the subject is, frees its "
                              "shape), mix (the seed's noise with some of the inversion) or noise."),
    variation: float = typer.Option(GenSettings.variation, help="How much of the seed's noise to blend into the "
                                    "inversion, 0 to 1 (default: 0 for one clip, the same clip for every seed; "
                                    f"{VARIANTS_VARIATION} with --variants; {MIX_VARIATION} with --start mix; "
                                    f"{LAYOUT_VARIATION} with --start layout, where it is the cut: the "
                                    "inversion is kept below 1 - variation of the Nyquist frequency)."),
    follow: str = typer.Option(GenSettings.follow, help="Hold the subject on the clip's subject track while sampling "
                               "(one subject on a plain background, as a sticker): on, off, or auto (on where the "
                               "meme has a track)."),
    follow_measure: str = typer.Option(GenSettings.follow_measure, help="Where a followed subject is measured: "
                                       "latents (no decoder in the loop) or pixels (a VAE decode in each of the "
                                       "first 70% of the steps)."),
    guidance_until: float = typer.Option(GenSettings.guidance_until, help="Guide only the steps whose timestep is "
                                         "at or above this share of the noise schedule, 0 to 1; later steps run "
                                         "the prompt alone, at half the work (0: every step)."),
    cache_interval: int = typer.Option(GenSettings.cache_interval, help="Compute the UNet's deep features every "
                                       "this many steps and reuse them between (torch backend), 1 to 8 (1: "
                                       "every step whole)."),
    variants: int = typer.Option(GenOptions.variants, help="Clips per prompt, seeds seed, seed+1, ... (files -v1, "
                                 "-v2, ...)."),
    fps: float = typer.Option(GenSettings.fps, help="Frame rate (default: the clip's, at least 8)."),
    max_kb: float = typer.Option(GenOptions.max_kb, help="Fit the file under this many KiB (fewer colours, then "
                                 "smaller)."),
    preset: str = typer.Option(GenOptions.preset, help="Write what a chat app takes as it is: " + ", ".join(PRESETS)
                               + " (container, canvas, timing and byte budget; `meme check` reads it back)."),
    loop: str = typer.Option(Look.loop, help="forward, pingpong (there and back) or crossfade (the end fades into "
                             "the start)."),
    sticker: bool = typer.Option(Look.sticker, help="A transparent background (cut from the frames' border colour) "
                                 "and a white outline."),
    shadow: bool = typer.Option(Look.shadow, help="With --sticker: a soft drop shadow under it."),
    top: str = typer.Option(Look.top, help="Caption at the top, in the classic meme look."),
    bottom: str = typer.Option(Look.bottom, help="Caption at the bottom."),
    pixel: int = typer.Option(Look.pixel, help="Pixel-art style: this many colours, scaled up without smoothing."),
    subject: str = typer.Option(GenOptions.subject, help="Instead of a prompt: the meme's own prompt with this "
                                "subject (\"running {apple-cat}\" + blueberry-elephant -> \"running "
                                "blueberry-elephant\")."),
    style: str = typer.Option(GenOptions.style, help="A style preset: plain, sticker, emoji, pixel, meme (prompt "
                              "template, negative prompt, guidance, chat-app preset and look)."),
    styles: Path = typer.Option(GenOptions.styles, help="A TOML file of more styles, keyed as the bundled "
                                "styles.toml."),
    backend: str = typer.Option(GenOptions.backend, help="torch, ort (ONNX Runtime), trt (TensorRT), or auto: the "
                                "fastest one the meme's exports allow here."),
    precision: str = typer.Option(GenOptions.precision, help="auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16, "
                                  "fp32."),
    device: str = DEVICE,
    prompts: Path = typer.Option(GenOptions.prompts, help="A text file with one prompt per line: one output each."),
    base: str = MOVED_BASE,
    base_config: str = BASE_CONFIG,
    allow_pickle: bool = ALLOW_PICKLE,
    compile: bool = typer.Option(GenOptions.compile, help="torch.compile the UNet: the first process compiles each "
                                 "shape, later ones read the kernels from the cache."),
    quiet: bool = QUIET,
    as_json: bool = JSON,
):
    """Make a GIF (or MP4/WebP) of a new subject with the meme's motion."""
    from .runtime.gen import run_gen

    _quiet_libraries()
    settings = GenSettings(seed=seed, steps=steps, guidance=guidance, negative=negative, sampler=sampler,
                           start=start, variation=variation, fps=fps, follow=follow, follow_measure=follow_measure,
                           guidance_until=guidance_until, cache_interval=cache_interval)
    results = run_gen(GenOptions(meme=meme, prompt=prompt, prompts=prompts, out=out, format=format,
                                 settings=settings, variants=variants, max_kb=max_kb, preset=preset, backend=backend,
                                 look=Look(loop=loop, sticker=sticker, shadow=shadow, top=top, bottom=bottom,
                                           pixel=pixel),
                                 subject=subject, style=style, styles=styles,
                                 precision=precision, device=device, base=base, base_config=base_config,
                                 allow_pickle=allow_pickle, compile=compile, quiet=quiet or as_json),
                      log=_log(quiet))
    if as_json:
        typer.echo(json.dumps(results if prompts or variants > 1 else results[0], indent=2))
    elif not quiet:
        for r in results:
            typer.echo(f"{r['output']}  ({r['bytes'] / 1024:.1f} KiB, {r['frames']} frames, "
                       f"{r['seconds']['total']:.2f} s)")


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
        typer.echo(json.dumps({"file": str(file), "preset": limits.name, **report.to_dict(), "ok": not found,
                               "breaches": found}, indent=2))
    else:
        _emit({"file": str(file), "preset": f"{limits.name} ({limits.app})", **report.to_dict()}, False)
        for line in found:
            typer.echo(f"breach: {line}", err=True)
        typer.echo(f"{'meets' if not found else 'breaks'} {limits.name}'s limits")
    return 1 if found else 0


@app.command()
def bench(
    preset: str = typer.Option(BenchOptions.preset, help="tiny (random-tiny, CPU-sized) or sd15 (SD1.5 architecture, "
                               "for GPUs)."),
    frames: int = typer.Option(BenchOptions.frames, help="Frames (default: 8 for tiny, 16 for sd15)."),
    size: int = typer.Option(BenchOptions.size, help="Square side in pixels (default: 64 for tiny, 256 for sd15)."),
    steps: int = typer.Option(BenchOptions.steps, help="Denoising steps."),
    guidance: float = typer.Option(BenchOptions.guidance, help="Guidance scale."),
    backends: str = typer.Option("auto", help="Backends to time, comma-separated: torch (CUDA graphs on a GPU), "
                                 "torch-eager, torch-compile, ort, trt; auto: torch plus ort and trt where installed "
                                 "(the baseline runs too unless --no-baseline)."),
    train: bool = typer.Option(BenchOptions.train, "--train", help="Also time tuning steps."),
    repeat: int = typer.Option(BenchOptions.repeat, help="Timed runs per stage, after one warm-up."),
    device: str = DEVICE,
    precision: str = typer.Option(BenchOptions.precision, help="Our precision: auto, bf16, fp16 or fp32."),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Skip the eager fp32 baseline."),
    json_path: Path = typer.Option(None, "--json", help="JSON report path (default: benchmarks/results/...)."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Markdown report path."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table."),
    batch_sizes: str = typer.Option(",".join(map(str, BenchOptions.batch_sizes)), help="Batch sizes whose "
                                    "throughput (clips/s) to time per backend; empty: none."),
    work_only: bool = typer.Option(False, "--work-only", help="Only the work per clip (FLOPs of the default path "
                                   "beside the previous default's), counted in seconds on any machine."),
    serve: bool = typer.Option(False, "--serve", help="Instead: drive `meme serve` on loopback with concurrent "
                               "clients (throughput, latency percentiles, batch sizes, 503s)."),
    clients: str = typer.Option(",".join(map(str, LoadOptions.clients)), help="With --serve: client counts."),
    memes: int = typer.Option(LoadOptions.memes, help="With --serve: memes the clients take in turn."),
    requests_per_client: int = typer.Option(LoadOptions.requests_per_client, help="With --serve: requests each "
                                            "client sends, one after another."),
):
    """Measure latency, memory and FLOP utilisation per stage, against the eager fp32 baseline (or, with --serve,
    the server's throughput under concurrent clients)."""
    from .bench.run import markdown, run_bench, write_report

    _quiet_libraries()
    if serve:
        from .bench.load import markdown as load_markdown
        from .bench.load import run_load, write_load_report

        report = run_load(LoadOptions(preset=preset, clients=_numbers("--clients", clients), memes=memes,
                                      requests_per_client=requests_per_client, steps=steps, device=device,
                                      quiet=quiet), log=_log(quiet))
        paths = write_load_report(report, json_path, markdown_path)
        typer.echo(load_markdown(report))
        if not quiet:
            typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)
        return
    chosen = None if backends == "auto" else tuple(b.strip() for b in backends.split(",") if b.strip())
    report = run_bench(BenchOptions(preset=preset, frames=frames, size=size, steps=steps, guidance=guidance,
                                    backends=chosen, train=train, repeat=repeat, device=device, precision=precision,
                                    baseline=not no_baseline, batch_sizes=_numbers("--batch-sizes", batch_sizes),
                                    work_only=work_only),
                       log=_log(quiet))
    paths = write_report(report, json_path, markdown_path)
    typer.echo(markdown(report))
    if not quiet:
        typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)


@app.command()
def serve(
    memes: Path = typer.Argument(ServeOptions.memes, help="Folder of memes (one sub-folder each, as `meme train` "
                                 "writes them); trained memes land here too."),
    host: str = typer.Option(ServeOptions.host, help="Address to bind: loopback by default; 0.0.0.0 exposes it."),
    port: int = typer.Option(ServeOptions.port, help="Port (0: any free one)."),
    token: str = typer.Option(ServeOptions.token, help=f"Require 'Authorization: Bearer TOKEN' (default: "
                              f"${TOKEN_ENV} if set, else no auth)."),
    device: str = DEVICE,
    precision: str = typer.Option(ServeOptions.precision, help="auto, bf16, fp16 or fp32."),
    backend: str = typer.Option(ServeOptions.backend, help="auto, torch, ort or trt."),
    max_memes: int = typer.Option(ServeOptions.max_memes, help="Memes kept in memory (least recently used go)."),
    max_bytes: int = typer.Option(ServeOptions.max_bytes, help="Bytes of adapters and inversions kept in memory."),
    window_ms: float = typer.Option(ServeOptions.window_ms, help="How long a request waits for others to batch "
                                    "with."),
    max_batch: int = typer.Option(ServeOptions.max_batch, help="Clips per batch at most."),
    max_queue: int = typer.Option(ServeOptions.max_queue, help="Requests waiting at most; more get 503."),
    deadline: float = typer.Option(ServeOptions.deadline_s, help="Seconds a request may take; then 504."),
    max_upload_mb: float = typer.Option(ServeOptions.max_upload_mb, help="Largest clip upload for training."),
    train_base: str = typer.Option(ServeOptions.train_base, help="Base that POST /memes tunes on."),
    train_base_config: str = BASE_CONFIG,
    ray: bool = typer.Option(False, "--ray", help="Run on Ray Serve (the ray extra) instead: many replicas."),
):
    """Serve memes over HTTP for chat apps (FastAPI on uvicorn; --ray for Ray Serve)."""
    o = ServeOptions(memes=memes, host=host, port=port, token=token, device=device, precision=precision,
                     backend=backend, max_memes=max_memes, max_bytes=max_bytes, window_ms=window_ms,
                     max_batch=max_batch, max_queue=max_queue, deadline_s=deadline, max_upload_mb=max_upload_mb,
                     train_base=train_base, train_base_config=train_base_config).check()
    _quiet_libraries()
    if ray:
        try:
            from .serve.ray_app import serve_on_ray
        except ImportError as e:
            raise MemeError(f"meme serve --ray needs the ray extra ({e.name} is missing): pip install "
                            f"\"meme-star[ray]\"") from e
        serve_on_ray(o)
        return
    try:
        from .serve.app import serve as run
    except ImportError as e:
        raise MemeError(f"meme serve needs the serve extra ({e.name} is missing): pip install "
                        f"\"meme-star[serve]\"") from e
    typer.echo(f"serving {memes} on http://{host}:{port} (docs at /docs){'' if o.token else ', no token'}", err=True)
    run(o)


@app.command()
def demo(
    out: Path = typer.Option(DEMO_OUT, "-o", "--out", help="Folder for the GIFs and the contact sheet."),
    steps: int = typer.Option(DEMO_STEPS, help="Tuning steps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = JSON,
):
    """The whole loop on the bundled tiny model, on a CPU: tune on one clip, make new subjects move the same way."""
    from .checks import MAX_TRAIN_STEPS, check_steps
    from .tiny.demo import format_table, run_demo

    check_steps(steps, "--steps", MAX_TRAIN_STEPS)
    _quiet_libraries()
    result = run_demo(out, steps=steps, quiet=quiet or as_json, log=_log(quiet or as_json))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(format_table(result))
    typer.echo(f"\nGIFs and {result['contact_sheet']} in {out}/ ({result['seconds']} s)")


@app.command(name="eval")
def eval_(
    motions: str = typer.Option(",".join(EvalOptions.motions), help="Motions, comma-separated (bouncing, sliding, "
                                "growing, spinning, popping)."),
    subjects: int = typer.Option(EvalOptions.subjects, help="New subjects per motion (at most 4)."),
    steps: int = typer.Option(EvalOptions.steps, help="Tuning steps per meme."),
    lr: float = typer.Option(EvalOptions.lr, help="Tuning learning rate."),
    losses: str = typer.Option(";".join(EvalOptions.losses), help="Tuning losses to compare, one tuning run each, "
                               "separated by ';' (each as --motion-loss takes it: mse;debiased;mse=1,residual=1)."),
    tunes: str = typer.Option(",".join(EvalOptions.tunes), help="What tuning changes, compared: all, temporal "
                              "(one tuning run each, for each loss)."),
    frame_positions: str = typer.Option(",".join("on" if p else "off" for p in EvalOptions.positions),
                                        help="Tune with frame positions (on), without (off), or both: on,off."),
    starts: str = typer.Option(",".join(EvalOptions.starts), help="Starts to compare: inversion, layout, mix, noise."),
    mix: float = typer.Option(EvalOptions.mix, help="The noise share of the mix start (--variation)."),
    layout: float = typer.Option(EvalOptions.layout, help="The layout start's --variation (its cut)."),
    samplers: str = typer.Option(",".join(EvalOptions.samplers), help="Samplers to compare: ddim, dpm++."),
    gen_steps: str = typer.Option(",".join(map(str, EvalOptions.gen_steps)), help="Sampling step counts to "
                                  "compare, e.g. 4,8,12,25."),
    follow: str = typer.Option(",".join("on" if f else "off" for f in EvalOptions.follows),
                               help="Follow the clip's subject track (on), not (off), or compare both: on,off."),
    guidance: str = typer.Option(",".join(f"{g:g}" for g in EvalOptions.guidances), help="Guidance scales to "
                                 "compare, e.g. 3,5."),
    follow_measure: str = typer.Option(",".join(EvalOptions.follow_measures), help="Where a followed subject is "
                                       "measured, compared: latents, pixels."),
    guidance_until: str = typer.Option(",".join(f"{g:g}" for g in EvalOptions.guidance_untils), help="Shares of "
                                       "the noise schedule below which guidance stops, compared, e.g. 0,0.5."),
    cache_interval: str = typer.Option(",".join(map(str, EvalOptions.cache_intervals)), help="Deep-feature cache "
                                       "intervals to compare, e.g. 1,2,3."),
    seeds: int = typer.Option(EvalOptions.seeds, help="Seeds per subject and start (their difference: variety)."),
    untuned: bool = typer.Option(EvalOptions.untuned, "--untuned/--no-untuned", help="Also score an untuned meme: "
                                 "what tuning adds."),
    base: str = typer.Option(EvalOptions.base, help="Base model (the tiny world's)."),
    keep: Path = typer.Option(None, help="Keep the memes and GIFs in this folder."),
    json_path: Path = typer.Option(None, "--json", help="JSON report path (default: benchmarks/results/...)."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Markdown report path."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table."),
):
    """Measure motion transfer on the tiny world: subject recognised per frame, trajectory against the source."""
    from .files import write_report
    from .tiny.evaluate import evaluate, json_safe, markdown

    def names(text: str, sep: str = ",") -> tuple[str, ...]:
        return tuple(m.strip() for m in text.split(sep) if m.strip())

    options = EvalOptions(motions=names(motions), subjects=subjects, steps=steps, lr=lr, losses=names(losses, ";"),
                          tunes=names(tunes), positions=_switches("--frame-positions", frame_positions),
                          starts=names(starts), mix=mix, layout=layout, samplers=names(samplers),
                          gen_steps=_numbers("--gen-steps", gen_steps), follows=_switches("--follow", follow),
                          guidances=_numbers("--guidance", guidance, float), follow_measures=names(follow_measure),
                          guidance_untils=_numbers("--guidance-until", guidance_until, float),
                          cache_intervals=_numbers("--cache-interval", cache_interval), seeds=seeds,
                          untuned=untuned, base=base, keep=keep)
    _quiet_libraries()
    report = evaluate(options, log=_log(quiet))
    stem = f"eval-{base}-{len(options.motions)}-motions-{report['date']}"
    write_report(json_safe(report), markdown(report), stem, json_path, markdown_path)
    typer.echo(markdown(report))


@app.command()
def base(
    reference: str = typer.Argument("random-tiny", help="Hub id, diffusers folder, .safetensors file, tiny, or "
                                                        "random-tiny / random-sd15."),
    base_config: str = BASE_CONFIG,
    group_norm: str = typer.Option(TrainOptions.group_norm, help="GroupNorm statistics: per-frame or frames."),
    allow_pickle: bool = ALLOW_PICKLE,
    as_json: bool = JSON,
):
    """Load a base model, inflate its UNet to video, and report its fingerprint and parameter counts."""
    from .checks import check_choice
    from .models.base import load_base
    from .models.video_unet import GROUP_NORM_MODES, VideoUNet

    check_choice("--group-norm", group_norm, GROUP_NORM_MODES)
    _quiet_libraries()
    b = load_base(reference, config=base_config, allow_pickle=allow_pickle)
    counts = VideoUNet(b.unet, group_norm).parameter_counts()
    _emit({"base": reference, "fingerprint": b.fingerprint.id, "unet_parameters": counts["total"],
           "temporal_parameters": counts["temporal"], "trainable_parameters": counts["trainable"],
           "prediction_type": b.scheduler_config.get("prediction_type", "epsilon")}, as_json)


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
        typer.echo(f"error: internal error ({type(e).__name__}: {one_line(str(e))[:300]}): a bug in meme-star; "
                   f"run again with MEMESTAR_DEBUG=1 for the traceback and report it", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
