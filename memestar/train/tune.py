"""The one-shot tuning loop: noise the clip's latents, predict with the video UNet, step the tuned tensors.

Frozen weights stay in the compute precision (half on GPU); the tuned tensors are fp32 master weights
under autocast. Each step's timestep and noise come from a generator seeded by (seed, step), so a run
resumed from a checkpoint reaches exactly the weights of an uninterrupted one.
"""

import json
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from tqdm import tqdm

from ..errors import MemeError, TrainingFailed
from ..files import save_safetensors
from ..models.video_unet import VideoUNet
from ..sampling.ddim import alphas_cumprod
from .losses import motion_loss
from .options import TuneSettings


@dataclass
class TuneResult:
    losses: list[float]
    interrupted: bool
    seconds: float


def loss_ends(losses: list[float]) -> tuple[float, float]:
    """The mean loss of a run's first and last steps (a quarter of them, at most 20): where it started and ended."""
    window = min(20, max(1, len(losses) // 4))
    return sum(losses[:window]) / window, sum(losses[-window:]) / window


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def noised(latents, noise, t, acp, prediction_type):
    """The noisy latents at timestep t and the target the model must predict there."""
    a = acp[t].to(latents.dtype)
    noisy = a.sqrt() * latents + (1 - a).sqrt() * noise
    if prediction_type == "epsilon":
        return noisy, noise
    if prediction_type == "v_prediction":
        return noisy, a.sqrt() * noise - (1 - a).sqrt() * latents
    raise MemeError(f"the base's prediction_type {prediction_type!r} is not supported (epsilon or v_prediction)")


@contextmanager
def stop_on_sigint(stop: threading.Event | None = None):
    """Turns the first Ctrl-C into a flag the loop checks between steps (`stop`, which a server sets to drain); a
    second one stops at once. Off the main thread there are no signals: only `stop`."""
    stop = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def tune(
    video: VideoUNet,
    latents: torch.Tensor,
    text: torch.Tensor,
    scheduler_config: dict,
    s: TuneSettings,
    *,
    dtype: torch.dtype,
    checkpoint: Path,
    run_key: dict,
    resume: bool = False,
    quiet: bool = False,
    on_step=None,
    stop: threading.Event | None = None,
) -> TuneResult:
    """Tunes `video` in place on one clip's `latents` (1 c f h w) and prompt embedding `text` (1 L d); `stop`, once
    set, ends the run after the current step with a checkpoint, as Ctrl-C does."""
    device = latents.device
    params = video.trainable_parameters(s.tuned)
    video.unet.requires_grad_(False)
    for p in params.values():
        p.data = p.data.float()
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params.values(), lr=s.lr, weight_decay=s.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    acp = alphas_cumprod(scheduler_config).to(device)
    prediction_type = scheduler_config.get("prediction_type", "epsilon")
    n_train = scheduler_config.get("num_train_timesteps", 1000)
    if s.gradient_checkpointing:
        video.unet.enable_gradient_checkpointing()
    video.train()

    start, losses = 0, []
    if resume:
        start, losses = load_checkpoint(checkpoint, params, optimizer, scaler, run_key)
    t0 = time.perf_counter()
    interrupted = False
    bar = tqdm(total=s.steps, initial=start, desc="tuning", unit="step", disable=quiet, dynamic_ncols=True)
    # the bar closes before any error line; the frame count holds over forward and backward (checkpointing
    # recomputes in backward)
    with bar, stop_on_sigint(stop) as stop, video.frames(latents.shape[2]):
        for step in range(start, s.steps):
            g = step_generator(s.seed, step, device)
            t = torch.randint(0, n_train, (1,), generator=g, device=device)
            noise = torch.randn(latents.shape, generator=g, device=device, dtype=latents.dtype)
            noisy, target = noised(latents, noise, t, acp, prediction_type)
            with autocast:
                pred = video(noisy.to(dtype), t, text)
            loss = motion_loss(pred, target, s.motion_loss, g)
            value = loss.item()
            if not math.isfinite(value):
                kept = (
                    f"the last good checkpoint is kept in {checkpoint.parent}"
                    if checkpoint.exists()
                    else "no checkpoint was written yet"
                )
                raise TrainingFailed(
                    f"the loss became {value} at step {step + 1}; {kept}: lower --lr or use --precision fp32/bf16"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params.values(), s.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            losses.append(value)
            bar.set_postfix(loss=f"{value:.4f}")
            bar.update(1)
            done = step + 1
            if on_step is not None:
                on_step(done, value)
            if stop.is_set():
                interrupted = True
            if interrupted or (s.checkpoint_every and done % s.checkpoint_every == 0 and done < s.steps):
                save_checkpoint(checkpoint, params, optimizer, scaler, done, losses, run_key)
            if interrupted:
                break
    video.eval()
    video.unet.disable_gradient_checkpointing()
    for p in params.values():
        p.requires_grad_(False)
    return TuneResult(losses, interrupted, time.perf_counter() - t0)


def save_checkpoint(path: Path, params: dict, optimizer, scaler, step: int, losses: list[float], run_key: dict):
    """Tuned tensors, AdamW moments and progress in one safetensors file, replacing the old one atomically."""
    tensors = {}
    for name, p in params.items():
        state = optimizer.state[p]  # empty while fp16's GradScaler has skipped every step so far
        tensors[f"param/{name}"] = p.detach().cpu().contiguous()
        tensors[f"exp_avg/{name}"] = state["exp_avg"].cpu().contiguous() if state else torch.zeros_like(p, device="cpu")
        tensors[f"exp_avg_sq/{name}"] = (
            state["exp_avg_sq"].cpu().contiguous() if state else torch.zeros_like(p, device="cpu")
        )
        tensors[f"adam_step/{name}"] = torch.tensor([float(state["step"]) if state else 0.0])
    metadata = {
        "step": str(step),
        "losses": json.dumps(losses),
        "run": json.dumps(run_key, sort_keys=True),
        "scaler": json.dumps(scaler.state_dict() if scaler.is_enabled() else {}),
    }
    save_safetensors(tensors, path, metadata)


def load_checkpoint(path: Path, params: dict, optimizer, scaler, run_key: dict) -> tuple[int, list[float]]:
    if not path.is_file():
        raise MemeError(f"--resume: no checkpoint in {path.parent}; run without --resume to start")
    try:
        return _load_checkpoint(path, params, optimizer, scaler, run_key)
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError) as e:
        raise MemeError(
            f"--resume: the checkpoint in {path.parent} is damaged ({str(e).splitlines()[0]}): "
            f"pass --force to start over"
        ) from e


def _load_checkpoint(path: Path, params: dict, optimizer, scaler, run_key: dict) -> tuple[int, list[float]]:
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
        saved_run = json.loads(meta["run"])
        if saved_run != json.loads(json.dumps(run_key, sort_keys=True)):
            differ = sorted(k for k in set(saved_run) | set(run_key) if saved_run.get(k) != run_key.get(k))
            raise MemeError(
                f"--resume: the checkpoint in {path.parent} was made with other settings "
                f"({', '.join(differ)}); use the same ones, or --force to start over"
            )
        step = int(meta["step"])
        state = {}
        with torch.no_grad():
            for i, (name, p) in enumerate(params.items()):
                p.copy_(f.get_tensor(f"param/{name}"))
                adam_step = float(f.get_tensor(f"adam_step/{name}")[0])
                if adam_step > 0:  # AdamW's own count, which excludes steps the GradScaler skipped
                    state[i] = {
                        "step": torch.tensor(adam_step),
                        "exp_avg": f.get_tensor(f"exp_avg/{name}").to(p.device),
                        "exp_avg_sq": f.get_tensor(f"exp_avg_sq/{name}").to(p.device),
                    }
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
    if scaler.is_enabled() and json.loads(meta["scaler"]):
        scaler.load_state_dict(json.loads(meta["scaler"]))
    return step, json.loads(meta["losses"])
