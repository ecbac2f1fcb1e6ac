"""The recipe that trains the bundled emoji base (`--base emoji`) on the emoji world, on a CPU, in resumable runs.

    python -m memestar.tiny.emoji_train [--work .emoji-train] [--stop-after MINUTES] [--resume]

The shapes recipe (`train.py`) with the emoji world's bank, vocabulary, sizes and reader:
1. a tokenizer whose merges make every word of the world's captions one token;
2. a bank of captioned random renders (`emoji_world.random_sprite`, fixed seed);
3. the VAE (64x64 <-> 16x16x4), then the bank encoded once and the latent scale set to unit std;
4. UNet and CLIP text encoder together on SD's epsilon loss, 10% captions dropped, EMA of the weights;
5. base quality: every emoji drawn from its caption and read back by `emoji_reader` (every `--curve-every` steps with
   one seed, at the end with `--quality-seeds`);
6. fp16 weights in diffusers layout plus `recipe.json` (settings, runs, times, losses, quality curve) in `--out`.

A run may stop after any step (`--stop-after`, or a kill: at most `--checkpoint-every` steps are lost); the work
folder keeps the stage, the weights, optimiser and random state (safetensors) and the curve, and `--resume` goes on
exactly where it stopped, with the same settings. Everything is seeded.

A finished training may be extended (`--resume --extend STEPS [--extend-lr LR]`): the UNet goes on from its last
weights and optimiser state along a second cosine (a warm restart), and the base is measured and written again; each
extension is recorded in the recipe's settings.
"""

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..formats.meme_folder import library_versions
from ..models.vae import decode_latents, encode_frames
from .emoji_reader import read_frame
from .emoji_world import EMOJI, SIDE, random_sprite, render, vocabulary
from .train import (
    EMA_DECAY,
    TEXT_CONFIG,
    UNET_CONFIG,
    UNetTraining,
    VAETraining,
    cosine_lr,
    draw,
    encode_bank,
    write_base,
    write_tokenizer,
)
from .train import VAE_CONFIG as SHAPES_VAE_CONFIG

WEIGHTS = Path(__file__).parent / "emoji" / "weights"
WORK = Path(".emoji-train")
STATE = "state.json"
RESUMABLE_AS_SET = (
    "stop_after",
    "resume",
    "quiet",
    "threads",
    "work",
    "checkpoint_every",
    "extend",
    "extend_lr",
)  # may differ between the runs of one training (an extension is recorded in the settings' "extensions")

# twice the shapes VAE's width: emoji have detail flat shapes lack (benchmarks/results/emoji-vae-pilot-2026-12-06.md)
VAE_CONFIG = SHAPES_VAE_CONFIG | dict(block_out_channels=(32, 64, 64), norm_num_groups=16)


def make_bank(n: int, seed: int, images: bool = True) -> tuple[np.ndarray | None, list[str]]:
    """`n` random renders (n 64 64 3 uint8; None when `images` is off, the captions alone) with their captions."""
    rng = np.random.default_rng(seed)
    sprites = [random_sprite(rng) for _ in range(n)]
    return (np.stack([render(s) for s in sprites]) if images else None), [s.caption() for s in sprites]


@torch.no_grad()
def emoji_quality(unet, vae, text_encoder, tokenizer, seeds=(0,), steps: int = 25, guidance: float = 5.0) -> dict:
    """Every emoji drawn from its caption alone ("a cow face") and read back: the share read as the emoji asked."""
    rows = []
    for seed in seeds:
        images = draw(unet, vae, text_encoder, tokenizer, [f"a {name}" for name in EMOJI], seed, steps, guidance)
        rows += [{"emoji": n, "seed": seed, "read": read_frame(image).name} for n, image in zip(EMOJI, images)]
    return {
        "right": float(np.mean([r["read"] == r["emoji"] for r in rows])),
        "images": len(rows),
        "steps": steps,
        "guidance": guidance,
        "wrong": sorted({r["emoji"] for r in rows if r["read"] != r["emoji"]}),
    }


def save_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)


class Work:
    """The work folder: `state.json` (settings, stage, seconds, runs, curve) and each stage's tensors."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.path = folder / STATE

    def read(self) -> dict:
        return json.loads(self.path.read_text())

    def write(self, state: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{STATE}.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, self.path)


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train the bundled emoji base model (resumable).")
    p.add_argument("--out", type=Path, default=WEIGHTS, help="where the finished base is written")
    p.add_argument("--work", type=Path, default=WORK, help="the work folder a resumed run goes on from")
    p.add_argument("--resume", action="store_true", help="go on from the work folder's last checkpoint")
    p.add_argument("--stop-after", type=float, default=0.0, help="minutes; checkpoint and stop then (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints")
    p.add_argument("--bank", type=int, default=30000)
    p.add_argument("--vae-steps", type=int, default=2400)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument(
        "--vae-crop", type=int, default=32, help="side of the random crops the VAE first trains on (0: none)"
    )
    p.add_argument("--vae-whole-share", type=float, default=0.1, help="share of the VAE's steps on whole images")
    p.add_argument("--unet-steps", type=int, default=12000)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--unet-lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=EMA_DECAY, help="EMA of the UNet and text encoder (0: none)")
    p.add_argument("--quality-seeds", type=int, default=4, help="seeds of the last quality check (one image per emoji)")
    p.add_argument("--quality-steps", type=int, default=25, help="DDIM steps of each quality drawing")
    p.add_argument("--curve-every", type=int, default=1000, help="measure the base's quality every N UNet steps")
    p.add_argument(
        "--extend", type=int, default=0, help="with --resume: UNet steps more after a finished training (warm restart)"
    )
    p.add_argument("--extend-lr", type=float, default=6e-4, help="peak learning rate of the extension's cosine")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    for name in (
        "bank",
        "vae_steps",
        "vae_batch",
        "unet_steps",
        "unet_batch",
        "checkpoint_every",
        "quality_seeds",
        "quality_steps",
    ):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if a.vae_crop and not (8 <= a.vae_crop <= SIDE and a.vae_crop % 4 == 0):
        p.error(f"--vae-crop must be 0 or a multiple of 4 from 8 to {SIDE} (the VAE halves the side twice)")
    if a.extend < 0 or (a.extend and not a.resume):
        p.error("--extend takes a number of steps and goes with --resume (it extends a finished training)")
    if not 0 < a.extend_lr <= 1e-1:
        p.error("--extend-lr must be above 0 and at most 0.1")
    if not 0 < a.vae_whole_share <= 1:
        p.error("--vae-whole-share must be above 0 and at most 1")
    state = a.work / STATE
    if a.resume and not state.is_file():
        p.error(f"--resume: {state} does not exist; start without --resume")
    if not a.resume and state.is_file():
        p.error(f"{a.work} holds an unfinished training: pass --resume to go on, or delete it to start again")
    return a


def settings_of(a: argparse.Namespace) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items() if k not in RESUMABLE_AS_SET}


def unet_schedule(settings: dict) -> tuple[int, Callable[[int], float]]:
    """All the UNet's steps and the learning rate of each: the first cosine, then one more per extension."""
    cycles = [(settings["unet_steps"], settings["unet_lr"])]
    cycles += [(e["steps"], e["lr"]) for e in settings.get("extensions", [])]

    def lr_at(step: int) -> float:
        for steps, peak in cycles:
            if step < steps:
                return cosine_lr(step, steps, peak)
            step -= steps
        return cosine_lr(cycles[-1][0], cycles[-1][0], cycles[-1][1])

    return sum(steps for steps, _ in cycles), lr_at


def main(argv=None) -> dict | None:
    """Trains (or goes on training) the emoji base; returns the recipe when finished, None when stopped early."""
    a = parse(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    interrupted = threading.Event()
    with stop_on_signals(interrupted):
        return train(
            a, interrupted, " ".join(["python -m memestar.tiny.emoji_train", *(sys.argv[1:] if argv is None else argv)])
        )


@contextlib.contextmanager
def stop_on_signals(interrupted: threading.Event):
    """Ctrl-C or a kill sets `interrupted` (the run checkpoints after the step under way and stops); a second one acts
    as it would have. The handlers before are back afterwards."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum, frame) -> None:
        interrupted.set()
        signal.signal(signum, previous[signum])

    for signum in previous:
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def train(a: argparse.Namespace, interrupted: threading.Event, command: str) -> dict | None:
    """The recipe's stages from where the work folder stands; `command` is recorded as this run's."""
    started = time.perf_counter()

    def should_stop() -> bool:
        return interrupted.is_set() or bool(a.stop_after) and time.perf_counter() - started > 60 * a.stop_after

    work = Work(a.work)
    if a.resume:
        state, now = work.read(), settings_of(a)
        first = {k: v for k, v in state["settings"].items() if k not in (*RESUMABLE_AS_SET, "extensions")}
        changed = sorted(k for k in first.keys() | now.keys() if first.get(k) != now.get(k))
        if changed:
            raise SystemExit(f"--resume with other settings ({', '.join(changed)}): resume with the first run's")
        if a.extend:
            if state["stage"] != "done":
                raise SystemExit(f"--extend: the training is not finished ({state['stage']}); --resume it first")
            state["settings"].setdefault("extensions", []).append({"steps": a.extend, "lr": a.extend_lr})
            state["stage"] = "unet"
    else:
        state = {"settings": settings_of(a), "stage": "vae", "seconds": {}, "runs": [], "curve": []}
    unet_steps, lr_at = unet_schedule(state["settings"])
    state["runs"].append(
        {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "machine": platform.machine(),
            "threads": torch.get_num_threads(),
        }
    )
    state.setdefault("commands", []).append(command)

    def spend(stage: str, since: float) -> None:
        state["seconds"][stage] = state["seconds"].get(stage, 0.0) + time.perf_counter() - since

    def stopped(stage: str, step: int, total: int) -> None:
        state["runs"][-1]["ended"] = f"{stage} step {step} of {total}"
        work.write(state)
        if not a.quiet:
            print(f"stopped at {stage} step {step} of {total}; go on with the same command and --resume")

    tokenizer = write_tokenizer(a.work / "tokenizer", vocabulary())
    vae_path, latents_path, unet_path = (
        a.work / "vae.safetensors",
        a.work / "latents.safetensors",
        a.work / "unet.safetensors",
    )

    if state["stage"] == "vae":
        t = time.perf_counter()
        images, _ = make_bank(a.bank, a.seed)
        spend("bank", t)
        training = VAETraining(
            images, a.vae_steps, a.vae_batch, a.vae_lr, a.seed, VAE_CONFIG, a.vae_crop, a.vae_whole_share
        )
        if vae_path.is_file():
            training.load(load_file(vae_path))
        while training.step < a.vae_steps:  # a checkpoint and the state that names it every `--checkpoint-every`
            until, t = min(a.vae_steps, training.step + a.checkpoint_every), time.perf_counter()
            finished = training.run(until, a.quiet, should_stop=should_stop)
            save_atomic(training.state(), vae_path)
            spend("vae", t)
            work.write(state)
            if not finished or (should_stop() and training.step < a.vae_steps):
                stopped("vae", training.step, a.vae_steps)
                return None
        t = time.perf_counter()
        vae = training.vae.eval().requires_grad_(False)
        raw = encode_bank(vae, images)
        scale = float(1 / raw.std())
        check = images[:512]
        recon = decode_latents(vae, encode_frames(vae, torch.from_numpy(check)))[0].numpy()
        state["vae_psnr_db"] = float(10 * np.log10(255**2 / np.mean((recon.astype(float) - check) ** 2)))
        state["vae_reads_right"] = float(
            np.mean([read_frame(r).name == read_frame(c).name for r, c in zip(recon[:224], check[:224])])
        )
        state["vae_loss_last100"] = float(np.mean(training.losses[-100:]))
        state["latent_scale"] = scale
        save_atomic({"latents": raw * scale}, latents_path)
        spend("vae", t)
        state["stage"] = "unet"
        work.write(state)

    vae = AutoencoderKL(**VAE_CONFIG)
    vae.load_state_dict({k[len("vae.") :]: v for k, v in load_file(vae_path).items() if k.startswith("vae.")})
    vae.register_to_config(scaling_factor=state["latent_scale"])
    vae.eval().requires_grad_(False)

    if state["stage"] == "unet":
        _, captions = make_bank(a.bank, a.seed, images=False)
        latents = load_file(latents_path)["latents"]
        training = UNetTraining(
            latents, captions, tokenizer, unet_steps, a.unet_batch, a.unet_lr, a.seed,
            ema_decay=a.ema_decay, unet_config=UNET_CONFIG, text_config=TEXT_CONFIG,
        )  # fmt: skip
        training.lr_at = lr_at
        if unet_path.is_file():
            training.load(load_file(unet_path))

        def measure(step: int) -> None:
            since = time.perf_counter()
            q = emoji_quality(training.ema_unet, vae, training.ema_text, tokenizer, steps=a.quality_steps)
            state["curve"].append(
                {"step": step, "right": q["right"], "loss_last100": float(np.mean(training.losses[-100:]))}
            )
            if not a.quiet:
                tqdm.write(f"step {step}: {q['right']:.2f} of the emoji drawn right")
            spend("curve", since)

        while training.step < unet_steps:
            until = min(unet_steps, training.step + a.checkpoint_every)
            t, curve_seconds = time.perf_counter(), state["seconds"].get("curve", 0.0)
            finished = training.run(until, a.quiet, a.curve_every, measure, should_stop)
            save_atomic(training.state(), unet_path)
            spend("unet", t + state["seconds"].get("curve", 0.0) - curve_seconds)  # the curve's time is its own
            work.write(state)
            if not finished or (should_stop() and training.step < unet_steps):
                stopped("unet", training.step, unet_steps)
                return None
        state["unet_loss_last100"] = float(np.mean(training.losses[-100:]))
        unet, text_encoder = training.ema_unet.eval(), training.ema_text.eval()
        t = time.perf_counter()
        quality = emoji_quality(
            unet, vae, text_encoder, tokenizer, seeds=tuple(range(a.quality_seeds)), steps=a.quality_steps
        )
        spend("quality", t)
        state["curve"].append(
            {"step": unet_steps, "right": quality["right"], "loss_last100": state["unet_loss_last100"]}
        )
        state["quality"] = quality
        write_base(a.out, unet, vae, text_encoder)
        write_tokenizer(a.out / "tokenizer", vocabulary())
        state["stage"] = "done"
        state["runs"][-1]["ended"] = "done"
        work.write(state)

    recipe = {
        "commands": state["commands"],
        "settings": state["settings"],
        "seconds": state["seconds"],
        "runs": state["runs"],
        **{k: state[k] for k in ("vae_psnr_db", "vae_reads_right", "latent_scale", "vae_loss_last100")},
        "unet_loss_last100": state["unet_loss_last100"],
        "quality": state["quality"],
        "curve": state["curve"],
        "versions": library_versions(),
        "font": "Noto Color Emoji (SIL Open Font License 1.1), through the atlas memestar/tiny/emoji/atlas.png",
    }
    (a.out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    if not a.quiet:
        print(json.dumps({k: v for k, v in recipe.items() if k not in ("versions", "runs")}, indent=2))
    return recipe


if __name__ == "__main__":
    main()
