"""The `meme` command: a thin layer over the package; every command's work lives in its stage."""

import json
import os
import sys
import time
from pathlib import Path

import typer

from .errors import MemeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="meme-star: tune Stable Diffusion on one clip, then make GIFs of new subjects with its motion.")


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


@app.command()
def clip(
    path: Path = typer.Argument(..., help="Video (mp4, webm, mov), GIF/WebP, or a folder of PNG/JPEG frames."),
    out: Path = typer.Option(..., "-o", "--out", help="Output file: .gif, .mp4 or .webp."),
    frames: int = typer.Option(16, help="Number of frames to take."),
    size: int = typer.Option(256, help="Square side in pixels (a multiple of 8)."),
    start: int = typer.Option(0, help="First frame."),
    stride: int = typer.Option(None, help="Take every N-th frame (default: spread evenly over the clip)."),
    fps: float = typer.Option(None, help="Frame rate of the output (default: the frames' own)."),
    format: str = typer.Option(None, help="gif, mp4 or webp (default: from the suffix)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Sample, crop and resize a clip the way `meme train` will see it, and write it out to look at."""
    from .media.clips import read_clip
    from .media.writers import media_format, write_media

    fmt = media_format(out, format)
    c = read_clip(path, frames, size, start=start, stride=stride)
    write_media(c.frames, out, fps or c.fps, fmt)
    _emit({"output": str(out), "frames": len(c.frames), "size": size, "fps": round(fps or c.fps, 3),
           "source_frames": c.source_frames, "indices": c.indices}, as_json)


@app.command()
def train(
    clip: Path = typer.Argument(..., help="The clip: a video (mp4, webm, mov), GIF/WebP, or a folder of frames."),
    text: str = typer.Option(..., "--text", "-t", help="What the clip shows, e.g. \"running apple-cat\"."),
    base: str = typer.Option("stable-diffusion-v1-5/stable-diffusion-v1-5", help="Base model: Hub id, diffusers "
                             "folder, .safetensors file, or random-tiny / random-sd15."),
    out: Path = typer.Option(None, help="Meme folder (default: memes/<prompt>)."),
    frames: int = typer.Option(16, help="Frames taken from the clip."),
    size: int = typer.Option(256, help="Square side in pixels (a multiple of 8)."),
    start: int = typer.Option(0, help="First frame of the clip."),
    stride: int = typer.Option(None, help="Take every N-th frame (default: spread evenly)."),
    steps: int = typer.Option(200, help="Tuning steps."),
    lr: float = typer.Option(3e-5, help="AdamW learning rate."),
    precision: str = typer.Option("auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16 or fp32."),
    seed: int = typer.Option(0, help="Seed for timesteps and noise."),
    resume: bool = typer.Option(False, help="Continue an interrupted run from its checkpoint."),
    force: bool = typer.Option(False, help="Replace a meme or an unfinished run in the output folder."),
    checkpoint_every: int = typer.Option(50, help="Write a resumable checkpoint every N steps (0: only on Ctrl-C)."),
    group_norm: str = typer.Option("per-frame", help="GroupNorm statistics: per-frame or frames (span the clip)."),
    gradient_checkpointing: bool = typer.Option(None, "--gradient-checkpointing/--no-gradient-checkpointing",
                                                help="Recompute activations to save memory (default: on for GPUs)."),
    inversion_steps: int = typer.Option(50, help="DDIM steps of the clip's inversion (and of the preview)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    base_config: str = typer.Option(None, help="Diffusers folder with the configs for a single-file checkpoint."),
    allow_pickle: bool = typer.Option(False, help="Allow pickled .ckpt/.bin weights (unpickling runs code)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Tune the base on one (text, clip) pair: writes a small meme folder for `meme gen`."""
    from .train.meme import TrainOptions, train_meme

    _quiet_libraries()
    summary = train_meme(TrainOptions(
        clip=clip, prompt=text, base=base, out=out, frames=frames, size=size, start=start, stride=stride,
        steps=steps, lr=lr, precision=precision, seed=seed, resume=resume, force=force,
        checkpoint_every=checkpoint_every, group_norm=group_norm, gradient_checkpointing=gradient_checkpointing,
        inversion_steps=inversion_steps, device=device, base_config=base_config, allow_pickle=allow_pickle,
        quiet=quiet or as_json))
    _emit(summary, as_json)


@app.command("export")
def export_(
    meme: Path = typer.Argument(..., help="Meme folder made by `meme train`."),
    onnx: bool = typer.Option(True, "--onnx", help="ONNX graphs: always made (engines are built from them)."),
    trt: bool = typer.Option(False, "--trt", help="Also FP16 TensorRT engines (the trt extra, on an NVIDIA GPU)."),
    precision: str = typer.Option("auto", help="Graph precision: fp32, fp16, or auto (fp16 on a GPU, fp32 on a CPU)."),
    opset: int = typer.Option(18, help="ONNX opset, 18 or higher (18 runs in ONNX Runtime and TensorRT)."),
    force: bool = typer.Option(False, help="Export again even when an export of the same inputs exists."),
    device: str = typer.Option("auto", help="Where torch runs for the export and its self-check: auto, cpu, cuda."),
    base: str = typer.Option(None, help="Where the meme's base is now, if it moved (must be the same weights)."),
    base_config: str = typer.Option(None, help="Diffusers folder with the configs for a single-file base."),
    allow_pickle: bool = typer.Option(False, help="Allow a pickled base (unpickling runs code)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Export a meme to checked ONNX graphs (text encoder, video UNet with the adapter, VAE decoder) and engines."""
    from .export.meme import ExportOptions, export_meme

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
    out: Path = typer.Option(None, "-o", "--out", help="Output file (default: <prompt>.gif); a folder with "
                                                      "--prompts."),
    format: str = typer.Option(None, help="gif, mp4 or webp (default: from the suffix, else gif)."),
    steps: int = typer.Option(25, help="Denoising steps."),
    guidance: float = typer.Option(7.5, help="Classifier-free guidance scale; 1 means no guidance."),
    negative: str = typer.Option("", help="Negative prompt."),
    seed: int = typer.Option(0, help="Seed of the start noise (with --start noise)."),
    sampler: str = typer.Option("ddim", help="ddim or dpm++."),
    start: str = typer.Option("inversion", help="inversion (keeps the clip's motion) or noise."),
    fps: float = typer.Option(None, help="Frame rate (default: the clip's, at least 8)."),
    max_kb: float = typer.Option(None, help="Fit the file under this many KiB (fewer colours, then smaller)."),
    backend: str = typer.Option("auto", help="torch, ort (ONNX Runtime), trt (TensorRT), or auto: the fastest one the "
                                "meme's exports allow here."),
    precision: str = typer.Option("auto", help="auto (bf16/fp16 on GPU, fp32 on CPU), bf16, fp16 or fp32."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    prompts: Path = typer.Option(None, help="A text file with one prompt per line: one output each."),
    base: str = typer.Option(None, help="Where the meme's base is now, if it moved (must be the same weights)."),
    base_config: str = typer.Option(None, help="Diffusers folder with the configs for a single-file base."),
    allow_pickle: bool = typer.Option(False, help="Allow a pickled base (unpickling runs code)."),
    compile: bool = typer.Option(False, help="torch.compile the UNet (slow first call)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or notes."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Make a GIF (or MP4/WebP) of a new subject with the meme's motion."""
    from tqdm import tqdm

    from .media.writers import media_format, write_bytes
    from .runtime.meme import Meme, check_generation

    lines = _prompt_list(prompt, prompts)
    single_file = out is not None and prompts is None and out.suffix
    fmt = media_format(out, format) if single_file else media_format(f"clip.{format or 'gif'}")
    targets = _output_paths(lines, out, fmt, many=prompts is not None)
    for p in lines:
        check_generation(p, steps, guidance, sampler, start)
    _quiet_libraries()
    m = Meme.load(meme, base=base, device=device, precision=precision, backend=backend, base_config=base_config,
                  allow_pickle=allow_pickle, compile=compile)
    results = []
    for p, target in tqdm(list(zip(lines, targets)), desc="generating", unit="clip",
                          disable=quiet or as_json or len(lines) == 1):
        g = m.generate(p, seed=seed, steps=steps, guidance=guidance, negative=negative, sampler=sampler, start=start,
                       fps=fps)
        t = time.perf_counter()
        data, note = g.encode(fmt, max_kb)
        write_bytes(data, target)
        g.seconds["encode"] = time.perf_counter() - t
        g.seconds["total"] += g.seconds["encode"]
        notes = g.warnings + ([note] if note else [])
        for line in [] if quiet else notes:
            typer.echo(f"note: {line}", err=True)
        results.append({"prompt": p, "output": str(target), "bytes": len(data), "frames": len(g.frames),
                        "size": g.frames.shape[1], "fps": g.fps, **g.settings,
                        "seconds": {k: round(v, 4) for k, v in g.seconds.items()}, "notes": notes})
    if as_json:
        typer.echo(json.dumps(results if prompts else results[0], indent=2))
    elif not quiet:
        for r in results:
            typer.echo(f"{r['output']}  ({r['bytes'] / 1024:.1f} KiB, {r['frames']} frames, "
                       f"{r['seconds']['total']:.2f} s)")


def _prompt_list(prompt: str | None, prompts: Path | None) -> list[str]:
    if (prompt is None) == (prompts is None):
        raise MemeError("give one prompt, or --prompts FILE with one prompt per line (not both)")
    if prompts is None:
        return [prompt]
    if not prompts.is_file():
        raise MemeError(f"prompts file {prompts} not found")
    lines = [line.strip() for line in prompts.read_text().splitlines() if line.strip()]
    if not lines:
        raise MemeError(f"prompts file {prompts} has no prompts: write one per line")
    return lines


def _output_paths(lines: list[str], out: Path | None, fmt: str, many: bool) -> list[Path]:
    from .files import slug

    if not many:
        targets = [out or Path(f"{slug(lines[0])}.{fmt}")]
    else:
        folder = out or Path(".")
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / f"{i:03d}-{slug(p)}.{fmt}" for i, p in enumerate(lines)]
    for t in targets:
        if not t.parent.is_dir():
            raise MemeError(f"cannot write {t}: folder {t.parent} does not exist")
        if not os.access(t.parent, os.W_OK):
            raise MemeError(f"cannot write {t}: folder {t.parent} is not writable")
    return targets


@app.command()
def bench(
    preset: str = typer.Option("tiny", help="tiny (random-tiny, CPU-sized) or sd15 (SD1.5 architecture, for GPUs)."),
    frames: int = typer.Option(None, help="Frames (default: 8 for tiny, 16 for sd15)."),
    size: int = typer.Option(None, help="Square side in pixels (default: 64 for tiny, 256 for sd15)."),
    steps: int = typer.Option(25, help="Denoising steps."),
    guidance: float = typer.Option(7.5, help="Guidance scale."),
    backends: str = typer.Option("auto", help="Our backends to time, comma-separated: torch, ort, trt; auto: every one "
                                 "installed here (the baseline runs too unless --no-baseline)."),
    train: bool = typer.Option(False, "--train", help="Also time tuning steps."),
    repeat: int = typer.Option(5, help="Timed runs per stage, after one warm-up."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
    precision: str = typer.Option("auto", help="Our precision: auto, bf16, fp16 or fp32."),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Skip the eager fp32 baseline."),
    json_path: Path = typer.Option(None, "--json", help="JSON report path (default: benchmarks/results/...)."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Markdown report path."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table."),
):
    """Measure latency, memory and FLOP utilisation per stage, against the eager fp32 baseline."""
    from .bench.run import BenchOptions, markdown, run_bench, write_report

    _quiet_libraries()
    chosen = None if backends == "auto" else tuple(b.strip() for b in backends.split(",") if b.strip())
    report = run_bench(BenchOptions(
        preset=preset, frames=frames, size=size, steps=steps, guidance=guidance, backends=chosen, train=train,
        repeat=repeat, device=device, precision=precision, baseline=not no_baseline),
        log=(lambda *a: None) if quiet else (lambda msg: typer.echo(msg, err=True)))
    paths = write_report(report, json_path, markdown_path)
    typer.echo(markdown(report))
    if not quiet:
        typer.echo(f"wrote {paths[0]} and {paths[1]}", err=True)


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "-o", "--out", help="Folder for the GIFs and the contact sheet."),
    steps: int = typer.Option(150, help="Tuning steps."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """The whole loop on the bundled tiny model, on a CPU: tune on one clip, make new subjects move the same way."""
    from .tiny.demo import format_table, run_demo

    _quiet_libraries()
    result = run_demo(out, steps=steps, quiet=quiet or as_json,
                      log=(lambda *a: None) if quiet or as_json else (lambda m: typer.echo(m, err=True)))
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(format_table(result))
    typer.echo(f"\nGIFs and {result['contact_sheet']} in {out}/ ({result['seconds']} s)")


@app.command(name="eval")
def eval_(
    motions: str = typer.Option("bouncing,sliding,growing", help="Motions, comma-separated (bouncing, sliding, "
                                "growing, spinning, popping)."),
    subjects: int = typer.Option(4, help="New subjects per motion (at most 4)."),
    steps: int = typer.Option(150, help="Tuning steps per meme."),
    lr: float = typer.Option(3e-3, help="Tuning learning rate."),
    starts: str = typer.Option("inversion,noise", help="Starts to compare."),
    group_norms: str = typer.Option("frames,per-frame", help="GroupNorm modes to compare (one tuning run each)."),
    untuned: bool = typer.Option(True, "--untuned/--no-untuned", help="Also score an untuned meme: what tuning adds."),
    base: str = typer.Option("tiny", help="Base model (the tiny world's)."),
    keep: Path = typer.Option(None, help="Keep the memes and GIFs in this folder."),
    json_path: Path = typer.Option(None, "--json", help="JSON report path (default: benchmarks/results/...)."),
    markdown_path: Path = typer.Option(None, "--markdown", help="Markdown report path."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the table."),
):
    """Measure motion transfer on the tiny world: subject recognised per frame, trajectory against the source."""
    from .files import write_report
    from .tiny.evaluate import EvalOptions, evaluate, markdown
    from .tiny.world import MOTIONS

    chosen = tuple(m.strip() for m in motions.split(",") if m.strip())
    if not chosen or set(chosen) - set(MOTIONS):
        raise MemeError(f"--motions must name some of {', '.join(MOTIONS)}")
    _quiet_libraries()
    report = evaluate(EvalOptions(motions=chosen, subjects=subjects, steps=steps, lr=lr,
                                  starts=tuple(starts.split(",")), group_norms=tuple(group_norms.split(",")),
                                  untuned=untuned, base=base, keep=keep),
                      log=(lambda *a: None) if quiet else (lambda m: typer.echo(m, err=True)))
    stem = f"eval-{base}-{'-'.join(chosen)}-{report['date']}"
    write_report(report, markdown(report), stem, json_path, markdown_path)
    typer.echo(markdown(report))


@app.command()
def base(
    reference: str = typer.Argument("random-tiny", help="Hub id, diffusers folder, .safetensors file, or "
                                                        "random-tiny / random-sd15."),
    base_config: str = typer.Option(None, help="Diffusers folder with the configs for a single-file checkpoint."),
    group_norm: str = typer.Option("per-frame", help="GroupNorm statistics: per-frame or frames (span the clip)."),
    allow_pickle: bool = typer.Option(False, help="Allow pickled .ckpt/.bin weights (unpickling runs code)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
):
    """Load a base model, inflate its UNet to video, and report its fingerprint and parameter counts."""
    from .models.base import load_base
    from .models.video_unet import GROUP_NORM_MODES, VideoUNet

    if group_norm not in GROUP_NORM_MODES:
        raise MemeError(f"--group-norm must be one of {', '.join(GROUP_NORM_MODES)}, not {group_norm!r}")
    _quiet_libraries()
    b = load_base(reference, config=base_config, allow_pickle=allow_pickle)
    counts = VideoUNet(b.unet, group_norm).parameter_counts()
    _emit({"base": reference, "fingerprint": b.fingerprint.id, "unet_parameters": counts["total"],
           "temporal_parameters": counts["temporal"], "trainable_parameters": counts["trainable"],
           "prediction_type": b.scheduler_config.get("prediction_type", "epsilon")}, as_json)


def main() -> None:
    """Entry point: usage errors exit 2 (click's own, and every `MemeError`) with one line, no traceback."""
    try:
        app()
    except MemeError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
