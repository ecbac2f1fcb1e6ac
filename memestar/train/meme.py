"""`meme train`: one (text, clip) pair -> a meme folder (see `memestar.meme_folder`).

read clip -> load base -> encode clip and prompt once -> tune -> save adapter -> DDIM-invert the clip ->
preview GIF -> meme.json, last.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..device import compute_dtype, peak_memory_bytes, pick_device
from ..errors import Interrupted, MemeError
from ..files import slug
from ..media.clips import check_size, read_clip
from ..media.writers import write_gif
from ..meme_folder import (ADAPTER, CHECKPOINT, INVERSION, MEME_JSON, PREVIEW, library_versions, save_inversion,
                           write_meme_json)
from ..models.adapter import save_adapter
from ..models.base import load_base
from ..models.text import encode_prompts
from ..models.vae import decode_latents, encode_frames
from ..models.video_unet import GROUP_NORM_MODES, VideoUNet
from .inversion import invert_clip, sample_from
from .tune import TuneSettings, tune

DEFAULT_BASE = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@dataclass
class TrainOptions:
    clip: Path
    prompt: str
    base: str = DEFAULT_BASE
    out: Path | None = None
    frames: int = 16
    size: int = 256
    start: int = 0
    stride: int | None = None
    steps: int = 200
    lr: float = 3e-5
    precision: str = "auto"
    seed: int = 0
    resume: bool = False
    force: bool = False
    checkpoint_every: int = 50
    group_norm: str = "per-frame"  # measured better than "frames" by `meme eval` (README)
    gradient_checkpointing: bool | None = None  # None: on for GPUs
    inversion_steps: int = 50
    preview_guidance: float = 7.5
    device: str | None = None
    base_config: str | None = None
    allow_pickle: bool = False
    quiet: bool = False


def default_out(prompt: str) -> Path:
    return Path("memes") / slug(prompt)


def check_options(o: TrainOptions) -> None:
    if not o.prompt.strip():
        raise MemeError("the prompt is empty: pass --text \"what the clip shows\"")
    for name in ("frames", "steps", "inversion_steps"):
        if getattr(o, name) < 1:
            raise MemeError(f"--{name.replace('_', '-')} is {getattr(o, name)}: it must be at least 1")
    if o.lr < 0 or o.checkpoint_every < 0:
        raise MemeError("--lr and --checkpoint-every must not be negative")
    if o.group_norm not in GROUP_NORM_MODES:
        raise MemeError(f"--group-norm must be one of {', '.join(GROUP_NORM_MODES)}, not {o.group_norm!r}")
    check_size(o.size)


def check_out_folder(out: Path, resume: bool, force: bool) -> None:
    """Refuses to overwrite a meme or an unfinished run unless asked to."""
    if out.exists() and not out.is_dir():
        raise MemeError(f"output {out} exists and is not a folder: choose another --out")
    if force or not out.is_dir():
        return
    if (out / MEME_JSON).exists():
        raise MemeError(f"{out} already holds a meme: choose another --out, or pass --force to replace it")
    if (out / CHECKPOINT).exists() and not resume:
        raise MemeError(f"{out} holds an unfinished run: pass --resume to continue it, or --force to start over")


def train_meme(o: TrainOptions, on_step=None) -> dict:
    """Runs the whole of `meme train`; returns the summary that `--json` prints."""
    check_options(o)
    out = Path(o.out) if o.out else default_out(o.prompt)
    check_out_folder(out, o.resume, o.force)
    device = pick_device(o.device)
    dtype = compute_dtype(o.precision, device)
    checkpointing = device.type == "cuda" if o.gradient_checkpointing is None else o.gradient_checkpointing
    seconds = {}

    t = time.perf_counter()
    clip = read_clip(o.clip, o.frames, o.size, start=o.start, stride=o.stride)
    base = load_base(o.base, device=device, dtype=dtype, config=o.base_config, allow_pickle=o.allow_pickle)
    video = VideoUNet(base.unet, o.group_norm)
    seconds["load"] = time.perf_counter() - t

    t = time.perf_counter()
    latents = encode_frames(base.vae, torch.from_numpy(clip.frames)).float()
    text, empty = encode_prompts(base.tokenizer, base.text_encoder, [o.prompt, ""]).chunk(2)
    if device.type == "cuda":  # the loop needs only the UNet on the GPU
        base.vae.to("cpu")
        base.text_encoder.to("cpu")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    seconds["encode"] = time.perf_counter() - t

    settings = TuneSettings(steps=o.steps, lr=o.lr, seed=o.seed, checkpoint_every=o.checkpoint_every,
                            gradient_checkpointing=checkpointing)
    run_key = {"prompt": o.prompt, "clip": Path(o.clip).name, "indices": clip.indices, "size": o.size,
               "base": base.fingerprint.id, "group_norm": o.group_norm, "precision": str(dtype),
               **{k: v for k, v in asdict(settings).items() if k != "checkpoint_every"}}
    out.mkdir(parents=True, exist_ok=True)
    result = tune(video, latents, text, base.scheduler_config, settings, dtype=dtype, checkpoint=out / CHECKPOINT,
                  run_key=run_key, resume=o.resume, quiet=o.quiet, on_step=on_step)
    seconds["tune"] = result.seconds
    peak = peak_memory_bytes(device)
    if result.interrupted:
        raise Interrupted(f"interrupted after step {len(result.losses)} of {o.steps}; a checkpoint is in {out}: "
                          f"run the same command with --resume to continue")

    if o.force:
        (out / MEME_JSON).unlink(missing_ok=True)  # the folder is not a meme until the new meme.json lands
    save_adapter(video, out / ADAPTER, base.reference, base.fingerprint)
    video.to(dtype)
    base.vae.to(device)

    t = time.perf_counter()
    inverted = invert_clip(video, latents, empty, base.scheduler_config, o.inversion_steps, o.quiet)
    save_inversion(out / INVERSION, inverted, o.inversion_steps)
    seconds["inversion"] = time.perf_counter() - t

    t = time.perf_counter()
    preview = sample_from(video, inverted, text, empty, base.scheduler_config, o.inversion_steps,
                          o.preview_guidance, o.quiet)
    write_gif(decode_latents(base.vae, preview)[0].cpu().numpy(), out / PREVIEW, clip.fps)
    seconds["preview"] = time.perf_counter() - t

    counts = video.parameter_counts()
    window = min(20, max(1, len(result.losses) // 4))
    summary = {
        "meme": str(out), "steps": o.steps, "first_loss": sum(result.losses[:window]) / window,
        "final_loss": sum(result.losses[-window:]) / window, "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "peak_memory_bytes": peak, "trainable_parameters": counts["trainable"], "device": str(device),
        "precision": str(dtype).removeprefix("torch."),
    }
    write_meme_json(out, {
        "prompt": o.prompt,
        "base": {"reference": base.reference, "fingerprint": base.fingerprint.to_dict(), "id": base.fingerprint.id},
        "frames": o.frames, "size": o.size, "fps": clip.fps, "group_norm": o.group_norm,
        "clip": {"name": Path(o.clip).name, "source_frames": clip.source_frames, "indices": clip.indices},
        "training": {**asdict(settings), "precision": summary["precision"], "losses": result.losses,
                     "first_loss": summary["first_loss"], "final_loss": summary["final_loss"],
                     "seconds": summary["seconds"], "peak_memory_bytes": peak, "device": str(device)},
        "inversion": {"steps": o.inversion_steps, "prompt": ""},
        "versions": library_versions(),
    })
    (out / CHECKPOINT).unlink(missing_ok=True)
    return summary
