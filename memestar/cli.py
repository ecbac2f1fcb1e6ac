"""The `meme` command: a thin layer over the package; every command's work lives in its stage."""

import json
import sys
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
    group_norm: str = typer.Option("frames", help="GroupNorm statistics: frames (span the clip) or per-frame."),
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


@app.command()
def base(
    reference: str = typer.Argument("random-tiny", help="Hub id, diffusers folder, .safetensors file, or "
                                                        "random-tiny / random-sd15."),
    base_config: str = typer.Option(None, help="Diffusers folder with the configs for a single-file checkpoint."),
    group_norm: str = typer.Option("frames", help="GroupNorm statistics: frames (span the clip) or per-frame."),
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
