"""`meme train`: one (text, clip) pair -> a meme folder (see `memestar.formats.meme_folder`).

read clip (and its subject's track, on a plain background) -> load base -> encode clip and prompt once -> tune ->
save adapter -> DDIM-invert the clip -> preview GIF (unless --no-preview) -> meme.json, last.
"""

import fcntl
import os
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from ..device import compute_dtype, peak_memory_bytes, pick_device
from ..errors import Interrupted, MemeError
from ..files import slug, write_error
from ..formats.meme_folder import (
    ADAPTER,
    CHECKPOINT,
    INVERSION,
    MEME_JSON,
    PREVIEW,
    ClipRecord,
    InversionRecord,
    SubjectTrackRecord,
    TrainingRecord,
    base_record,
    library_versions,
    save_inversion,
    write_meme_json,
)
from ..media.clips import read_clip
from ..media.matte import background_colour
from ..media.writers import write_gif
from ..models.adapter import save_adapter
from ..models.base import load_base
from ..models.text import encode_prompts
from ..models.vae import decode_latents, encode_frames
from ..models.video_unet import VideoUNet
from ..prompts import split_subject
from ..sampling.ddim import DDIMSchedule
from ..sampling.follow import plain_background, subject_track
from .inversion import invert_clip, sample_from
from .options import TrainOptions, TuneSettings, parse_motion_loss
from .tune import loss_ends, tune


def default_out(prompt: str) -> Path:
    return Path("memes") / slug(prompt)


def check_out_folder(out: Path, resume: bool, force: bool) -> None:
    """Refuses to overwrite a meme or an unfinished run unless asked to."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise MemeError(f"output {out} exists and is not a folder: choose another --out")
    if force or not out.is_dir():
        return
    if (out / MEME_JSON).exists():
        raise MemeError(f"{out} already holds a meme: choose another --out, or pass --force to replace it")
    if (out / CHECKPOINT).exists() and not resume:
        raise MemeError(f"{out} holds an unfinished run: pass --resume to continue it, or --force to start over")


@contextmanager
def locked_folder(out: Path):
    """Creates `out` and holds an exclusive lock on it while the run writes there; a second run on the same
    folder is refused at once (the lock goes with the process, even when it is killed). A folder this run
    created and left empty (it failed before writing anything) is removed again."""
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as e:
        raise write_error(e, out) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise MemeError(
                f"another `meme train` is writing to {out}: wait for it to finish, or choose another --out"
            ) from e
        yield
    finally:
        if created and not any(out.iterdir()):
            out.rmdir()
        os.close(fd)


def train_meme(o: TrainOptions, on_step=None, between_steps=None, stop=None) -> dict:
    """Runs the whole of `meme train`; returns the summary that `--json` prints. `on_step(step, loss)` follows the
    tuning; `between_steps()` runs between the inversion's and the preview's steps (a server's device gate);
    `stop` (a threading.Event), once set, ends the tuning at its next step with a checkpoint (Interrupted)."""
    o.check()
    out = Path(o.out) if o.out else default_out(split_subject(o.prompt)[0])
    check_out_folder(out, o.resume, o.force)
    device = pick_device(o.device)
    dtype = compute_dtype(o.precision, device)
    with locked_folder(out):
        check_out_folder(out, o.resume, o.force)  # again, now that no other run can change it
        return _train(o, out, device, dtype, on_step, between_steps, stop)


def _train(o: TrainOptions, out: Path, device: torch.device, dtype: torch.dtype, on_step, between_steps, stop) -> dict:
    checkpointing = device.type == "cuda" if o.gradient_checkpointing is None else o.gradient_checkpointing
    prompt, template = split_subject(o.prompt)  # braces mark the subject: "running {apple-cat}"
    seconds = {}

    t = time.perf_counter()
    clip = read_clip(o.clip, o.frames, o.size, start=o.start, stride=o.stride)
    frames = torch.from_numpy(clip.frames)
    track = None
    if plain_background(frames):
        track = SubjectTrackRecord.from_tensor(subject_track(frames[None])[0], background_colour(clip.frames).round())
    base = load_base(o.base, device=device, dtype=dtype, config=o.base_config, allow_pickle=o.allow_pickle)
    DDIMSchedule(base.scheduler_config, o.inversion_steps)  # a schedule it cannot run is refused before tuning
    video = VideoUNet(base.unet, o.group_norm, o.frame_positions, o.frame_attention)
    seconds["load"] = time.perf_counter() - t

    t = time.perf_counter()
    latents = encode_frames(base.vae, frames).float()
    text, empty = encode_prompts(base.tokenizer, base.text_encoder, [prompt, ""]).chunk(2)
    if device.type == "cuda":  # the loop needs only the UNet on the GPU
        base.vae.to("cpu")
        base.text_encoder.to("cpu")
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    seconds["encode"] = time.perf_counter() - t

    settings = TuneSettings(
        steps=o.steps,
        lr=o.lr,
        seed=o.seed,
        checkpoint_every=o.checkpoint_every,
        gradient_checkpointing=checkpointing,
        motion_loss=parse_motion_loss(o.motion_loss),
        tuned=o.tune,
    )
    run_key = {
        "prompt": prompt,
        "clip": Path(o.clip).name,
        "indices": clip.indices,
        "size": o.size,
        "base": base.fingerprint.id,
        "group_norm": o.group_norm,
        "frame_positions": o.frame_positions,
        "frame_attention": o.frame_attention,
        "precision": str(dtype),
        **{k: v for k, v in asdict(settings).items() if k != "checkpoint_every"},
    }
    result = tune(
        video,
        latents,
        text,
        base.scheduler_config,
        settings,
        dtype=dtype,
        checkpoint=out / CHECKPOINT,
        run_key=run_key,
        resume=o.resume,
        quiet=o.quiet,
        on_step=on_step,
        stop=stop,
    )
    seconds["tune"] = result.seconds
    peak = peak_memory_bytes(device)
    if result.interrupted:
        raise Interrupted(
            f"interrupted after step {len(result.losses)} of {o.steps}; a checkpoint is in {out}: "
            f"run the same command with --resume to continue"
        )

    if o.force:
        (out / MEME_JSON).unlink(missing_ok=True)  # the folder is not a meme until the new meme.json lands
    save_adapter(video, out / ADAPTER, base.reference, base.fingerprint)
    video.to(dtype)
    base.vae.to(device)

    t = time.perf_counter()
    inverted = invert_clip(video, latents, empty, base.scheduler_config, o.inversion_steps, o.quiet, between_steps)
    save_inversion(out / INVERSION, inverted, o.inversion_steps)
    seconds["inversion"] = time.perf_counter() - t

    if o.preview:
        t = time.perf_counter()
        preview = sample_from(
            video,
            inverted,
            text,
            empty,
            base.scheduler_config,
            o.inversion_steps,
            o.preview_guidance,
            o.quiet,
            between_steps,
        )
        write_gif(decode_latents(base.vae, preview)[0].cpu().numpy(), out / PREVIEW, clip.fps)
        seconds["preview"] = time.perf_counter() - t
    else:
        (out / PREVIEW).unlink(missing_ok=True)  # a forced retrain's old preview is not this meme's

    counts = video.parameter_counts()
    first_loss, final_loss = loss_ends(result.losses)
    summary = {
        "meme": str(out),
        "steps": o.steps,
        "first_loss": first_loss,
        "final_loss": final_loss,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "peak_memory_bytes": peak,
        "trainable_parameters": counts["trainable"],
        "device": str(device),
        "precision": str(dtype).removeprefix("torch."),
        "subject_track": track is not None,
    }
    write_meme_json(
        out,
        prompt=prompt,
        template=template,
        base=base_record(base),
        frames=o.frames,
        size=o.size,
        fps=clip.fps,
        group_norm=o.group_norm,
        frame_positions=o.frame_positions,
        frame_attention=o.frame_attention,
        subject_track=track,
        clip=ClipRecord(name=Path(o.clip).name, source_frames=clip.source_frames, indices=clip.indices),
        training=TrainingRecord(
            **asdict(settings),
            precision=summary["precision"],
            losses=result.losses,
            first_loss=summary["first_loss"],
            final_loss=summary["final_loss"],
            seconds=summary["seconds"],
            peak_memory_bytes=peak,
            device=str(device),
        ),
        inversion=InversionRecord(steps=o.inversion_steps, prompt=""),
        versions=library_versions(),
    )
    (out / CHECKPOINT).unlink(missing_ok=True)
    return summary
