"""The recipe that trains the bundled tiny base model on the synthetic world, on a CPU.

    python -m memestar.tiny.train [--out memestar/tiny/weights] [--vae-steps 1800 | --vae FOLDER] [--unet-steps 3600]

1. a tokenizer whose merges make every world word one token (any other text falls back to characters);
2. a bank of captioned random renders (fixed seed);
3. the VAE (64x64 <-> 16x16x4): MSE + 1e-4 KL, or the VAE of an earlier run (`--vae`: the UNet alone is retrained);
4. the bank encoded once; the latent scale set so latents have unit std;
5. UNet and CLIP text encoder trained together on SD's epsilon loss and noise schedule (optionally weighted by
   Min-SNR-gamma, `--min-snr`, off by default: nearly clean timesteps weigh less), 10% captions dropped (for
   guidance), AdamW with cosine decay, EMA of the weights (`--ema-decay`: a long average lags a short run);
6. base quality: every colour x shape drawn and read back by the recogniser (`--quality-seeds` 4), every
   `--curve-every` steps too (two seeds);
7. fp16 weights in diffusers layout plus `recipe.json` (settings, times, losses, quality).
Everything is seeded: the same command on the same library versions gives the same weights.
"""

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.utils import SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..formats.meme_folder import library_versions
from ..models.random_base import SD_SCHEDULER, bytes_to_unicode, write_pipeline
from ..models.text import encode_prompts
from ..models.vae import decode_latents, encode_frames
from ..sampling.ddim import DDIMSchedule, alphas_cumprod
from ..sampling.guidance import guided_output
from .recognise import read_frame
from .world import COLOURS, SHAPES, Sprite, random_sprite, render, vocabulary

WEIGHTS = Path(__file__).parent / "weights"
MAX_TOKENS = 16
EMA_DECAY = 0.995  # a longer average lags a run of a few thousand steps (README: the bundled tiny model)

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(16, 32, 32),
    layers_per_block=1,
    down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3,
    latent_channels=4,
    norm_num_groups=8,
    sample_size=64,
    mid_block_add_attention=False,
)
UNET_CONFIG = dict(
    sample_size=16,
    in_channels=4,
    out_channels=4,
    block_out_channels=(64, 128, 128),
    layers_per_block=1,
    norm_num_groups=32,
    cross_attention_dim=128,
    attention_head_dim=4,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
)
TEXT_CONFIG = dict(
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=MAX_TOKENS,
    projection_dim=128,
    hidden_act="quick_gelu",
)


def write_tokenizer(folder: Path, words: list[str] | None = None) -> CLIPTokenizer:
    """Byte-level CLIP BPE: every printable byte is a token; merges build each world word (`words`, default the shapes
    world's) left to right."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    merges = []
    ordered = sorted(set(words or vocabulary()), key=lambda w: (-len(w), w))  # longest first, ties by name
    for word in ordered:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        for i in range(1, len(pieces)):
            left, right = "".join(pieces[:i]), pieces[i]
            if f"{left} {right}" not in merges:
                merges.append(f"{left} {right}")
                tokens.append(left + right)
    # A word whose letters an earlier word's merges take first ("b i" of "birthday" inside "rabbit") stays in pieces:
    # merges appended last join what BPE leaves of it, until every word is one token.
    unfinished = True
    while unfinished:
        unfinished = False
        for word in ordered:
            pieces = bpe(list(word[:-1]) + [word[-1] + "</w>"], {m: i for i, m in enumerate(merges)})
            if len(pieces) > 1:
                merges.append(f"{pieces[0]} {pieces[1]}")
                tokens.append(pieces[0] + pieces[1])
                unfinished = True
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(tokens))}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": MAX_TOKENS}))
    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def bpe(pieces: list[str], ranks: dict[str, int]) -> list[str]:
    """What CLIP's BPE makes of a word's pieces: the best-ranked merge present, applied everywhere, until none is."""
    while True:
        pairs = [(ranks[f"{a} {b}"], a, b) for a, b in zip(pieces, pieces[1:]) if f"{a} {b}" in ranks]
        if not pairs:
            return pieces
        _, first, second = min(pairs)
        merged, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and (pieces[i], pieces[i + 1]) == (first, second):
                merged.append(first + second)
                i += 2
            else:
                merged.append(pieces[i])
                i += 1
        pieces = merged


def make_bank(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """`n` random renders (n 64 64 3 uint8) with captions; half name the size."""
    rng = np.random.default_rng(seed)
    images, captions = np.empty((n, 64, 64, 3), np.uint8), []
    for i in range(n):
        sprite = random_sprite(rng)
        images[i] = render(sprite)
        captions.append(sprite.caption(size_word=bool(rng.integers(2))))
    return images, captions


def to_pixels(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1


def cosine_lr(step: int, total: int, peak: float, warmup: int = 100) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))


class Training:
    """A seeded training loop that can stop after any step and go on later exactly where it stopped: its modules,
    optimiser, random generator and losses are `state()`, a flat dict of tensors (safetensors, no pickle)."""

    name = "training"

    def __init__(self, modules: dict[str, torch.nn.Module], params: list, lr: float, steps: int, seed: int, decay):
        self.modules, self.lr, self.steps, self.step = modules, lr, steps, 0
        self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=decay)
        self.rng = torch.Generator().manual_seed(seed)
        self.losses: list[float] = []

    def lr_at(self, step: int) -> float:
        return cosine_lr(step, self.steps, self.lr)

    def train_step(self) -> float:
        raise NotImplementedError

    def run(self, until: int, quiet: bool, every: int = 0, on_every=None, should_stop=lambda: False) -> bool:
        """Steps up to `until` (of `steps`); False when `should_stop()` ended it early (after a whole step)."""
        for step in tqdm(range(self.step, until), desc=self.name, disable=quiet, initial=self.step, total=self.steps):
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(step)
            self.losses.append(self.train_step())
            self.step = step + 1
            if every and on_every and self.step % every == 0 and self.step < self.steps:
                on_every(self.step)
            if should_stop() and self.step < until:
                return False
        return True

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {f"{name}.{k}": v for name, m in self.modules.items() for k, v in m.state_dict().items()}
        for index, slots in self.optimizer.state_dict()["state"].items():
            tensors |= {f"optimizer.{index}.{k}": torch.as_tensor(v) for k, v in slots.items()}
        return tensors | {
            "rng": self.rng.get_state(),
            "losses": torch.tensor(self.losses, dtype=torch.float64),
            "step": torch.tensor(self.step),
        }

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, module in self.modules.items():
            prefix = f"{name}."
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        optimizer = self.optimizer.state_dict()
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optimizer."):
                _, index, slot = key.split(".", 2)
                slots.setdefault(int(index), {})[slot] = value
        self.optimizer.load_state_dict({"state": slots, "param_groups": optimizer["param_groups"]})
        self.rng.set_state(tensors["rng"])
        self.losses = tensors["losses"].tolist()
        self.step = int(tensors["step"])


class VAETraining(Training):
    """MSE + 1e-4 KL on random batches of the bank."""

    name = "vae"

    def __init__(
        self,
        images: np.ndarray,
        steps: int,
        batch: int,
        lr: float,
        seed: int,
        config: dict = VAE_CONFIG,
        crop: int = 0,
        whole_share: float = 1.0,
    ):
        """`crop`: the first (1 - `whole_share`) of the steps see random crop x crop squares (a quarter of the work at
        half the side: the VAE is convolutional), the rest whole images (its group norms see whole frames)."""
        torch.manual_seed(seed)
        self.vae, self.images, self.batch = AutoencoderKL(**config), images, batch
        self.crop, self.whole_from = crop, round(steps * (1 - whole_share)) if crop else 0
        super().__init__({"vae": self.vae}, list(self.vae.parameters()), lr, steps, seed, decay=0.0)

    def train_step(self) -> float:
        pick = torch.randint(0, len(self.images), (self.batch,), generator=self.rng).numpy()
        x = to_pixels(self.images[pick])
        if self.step < self.whole_from:
            top, left = torch.randint(0, x.shape[-1] - self.crop + 1, (2,), generator=self.rng).tolist()
            x = x[..., top : top + self.crop, left : left + self.crop]
        posterior = self.vae.encode(x).latent_dist
        recon = self.vae.decode(posterior.sample(generator=self.rng)).sample
        loss = F.mse_loss(recon, x) + 1e-4 * posterior.kl().mean() / x[0].numel()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def load_vae(folder: Path, config: dict = VAE_CONFIG) -> AutoencoderKL:
    """The VAE an earlier run of this recipe wrote (its weights and latent scale), to keep as it is."""
    vae = AutoencoderKL(**config)
    weights = load_file(folder / SAFETENSORS_WEIGHTS_NAME)
    vae.load_state_dict({k: v.float() for k, v in weights.items()})
    vae.register_to_config(scaling_factor=AutoencoderKL.load_config(folder)["scaling_factor"])
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_bank(vae: AutoencoderKL, images: np.ndarray, chunk: int = 256) -> torch.Tensor:
    return torch.cat(
        [vae.encode(to_pixels(images[i : i + chunk])).latent_dist.mean for i in range(0, len(images), chunk)]
    )


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1 - decay)


class UNetTraining(Training):
    """UNet and CLIP text encoder together on SD's epsilon loss, captions dropped at `drop` (for guidance), an EMA of
    both kept (what the recipe ships)."""

    name = "unet"

    def __init__(
        self,
        latents: torch.Tensor,
        captions: list[str],
        tokenizer,
        steps: int,
        batch: int,
        lr: float,
        seed: int,
        drop: float = 0.1,
        ema_decay: float = EMA_DECAY,
        min_snr: float = 0.0,
        unet_config: dict = UNET_CONFIG,
        text_config: dict = TEXT_CONFIG,
    ):
        torch.manual_seed(seed)
        self.unet = UNet2DConditionModel(**unet_config)
        self.text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
                **text_config,
            )
        )
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)
        self.ema_text = copy.deepcopy(self.text_encoder).requires_grad_(False)
        self.params = list(self.unet.parameters()) + list(self.text_encoder.parameters())
        modules = {"unet": self.unet, "text": self.text_encoder, "ema_unet": self.ema_unet, "ema_text": self.ema_text}
        super().__init__(modules, self.params, lr, steps, seed, decay=1e-2)
        self.latents, self.batch, self.drop, self.ema_decay, self.min_snr = latents, batch, drop, ema_decay, min_snr
        self.acp = alphas_cumprod(SD_SCHEDULER)
        self.ids = tokenizer(
            captions + [""], padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt"
        ).input_ids
        self.empty = self.ids[-1]

    def train_step(self) -> float:
        rng, batch, acp = self.rng, self.batch, self.acp
        pick = torch.randint(0, len(self.latents), (batch,), generator=rng)
        x0 = self.latents[pick]
        tokens = self.ids[pick].clone()
        tokens[torch.rand(batch, generator=rng) < self.drop] = self.empty
        t = torch.randint(0, len(acp), (batch,), generator=rng)
        noise = torch.randn(x0.shape, generator=rng)
        a = acp[t].view(-1, 1, 1, 1)
        noisy = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = self.unet(noisy, t, self.text_encoder(tokens)[0]).sample
        loss = F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3))
        if self.min_snr:  # Min-SNR-gamma: easy, nearly clean timesteps weigh less, so the shape's steps weigh more
            snr = acp[t] / (1 - acp[t])
            loss = loss * snr.clamp(max=self.min_snr) / snr
        loss = loss.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        decay = self.ema_decay if self.step > 200 else 0.0
        ema_update(self.ema_unet, self.unet, decay)
        ema_update(self.ema_text, self.text_encoder, decay)
        return loss.item()


@torch.no_grad()
def draw(unet, vae, text_encoder, tokenizer, prompts: list[str], seed: int, steps: int, guidance: float) -> np.ndarray:
    """One image per prompt (n h w 3 uint8), DDIM from seeded noise with classifier-free guidance."""
    text = encode_prompts(tokenizer, text_encoder, prompts + [""])
    texts = torch.cat([text[-1:].expand(len(prompts), -1, -1), text[:-1]])  # uncond then cond
    schedule = DDIMSchedule(SD_SCHEDULER, steps)
    side = unet.config.sample_size
    x = torch.randn(len(prompts), 4, side, side, generator=torch.Generator().manual_seed(seed))
    latents = schedule.sample(
        x, lambda x, t: guided_output(lambda x, t, e: unet(x, t, e).sample, x, t, texts, guidance)
    )
    return decode_latents(vae, latents.transpose(0, 1)[None])[0].numpy()  # n as frames


@torch.no_grad()
def base_quality(unet, vae, text_encoder, tokenizer, seeds=(0, 1), steps: int = 25, guidance: float = 5.0) -> dict:
    """Draws every colour x shape pair from its caption alone and reads each drawing back."""
    pairs = [(c, s) for c in COLOURS for s in SHAPES]
    prompts = [Sprite(c, s).caption() for c, s in pairs]
    rows = []
    for seed in seeds:
        images = draw(unet, vae, text_encoder, tokenizer, prompts, seed, steps, guidance)
        for (c, s), image in zip(pairs, images):
            r = read_frame(image)
            rows.append({"colour": c, "shape": s, "seed": seed, "read_colour": r.colour, "read_shape": r.shape})
    colour = np.mean([r["read_colour"] == r["colour"] for r in rows])
    shape = np.mean([r["read_shape"] == r["shape"] for r in rows])
    both = np.mean([r["read_colour"] == r["colour"] and r["read_shape"] == r["shape"] for r in rows])
    return {
        "colour": float(colour),
        "shape": float(shape),
        "both": float(both),
        "images": len(rows),
        "steps": steps,
        "guidance": guidance,
        "rows": rows,
    }


def write_base(out: Path, unet, vae, text_encoder) -> None:
    """fp16 weights in diffusers' layout, with SD's DDIM scheduler and a model index: a base `load_base` reads."""
    write_pipeline(out, {"unet": unet, "vae": vae, "text_encoder": text_encoder}, torch.float16)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description="Train the bundled tiny base model.")
    p.add_argument("--out", type=Path, default=WEIGHTS)
    p.add_argument("--bank", type=int, default=30000)
    p.add_argument("--vae-steps", type=int, default=1800)
    p.add_argument("--vae-batch", type=int, default=32)
    p.add_argument("--vae-lr", type=float, default=2e-3)
    p.add_argument("--vae", type=Path, help="a trained VAE folder (diffusers layout) to keep instead of training one")
    p.add_argument("--unet-steps", type=int, default=3600)
    p.add_argument("--unet-batch", type=int, default=32)
    p.add_argument("--unet-lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=EMA_DECAY, help="EMA of the UNet and text encoder (0: none)")
    p.add_argument(
        "--min-snr", type=float, default=0.0, help="Min-SNR-gamma loss weighting (0: off, plain epsilon MSE)"
    )
    p.add_argument("--quality-seeds", type=int, default=4, help="seeds of the last quality check (24 drawings each)")
    p.add_argument("--curve-every", type=int, default=600, help="measure the base's quality every N UNet steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.vae and not (a.vae / SAFETENSORS_WEIGHTS_NAME).is_file():
        p.error(f"--vae {a.vae}: no {SAFETENSORS_WEIGHTS_NAME} there; name a VAE folder this recipe wrote")
    if a.threads:
        torch.set_num_threads(a.threads)
    seconds, t = {}, time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(a.out / "tokenizer")
    images, captions = make_bank(a.bank, a.seed)
    seconds["bank"] = time.perf_counter() - t

    t = time.perf_counter()
    if a.vae:
        vae, vae_losses = load_vae(a.vae), []
    else:
        vae_training = VAETraining(images, a.vae_steps, a.vae_batch, a.vae_lr, a.seed)
        vae_training.run(a.vae_steps, a.quiet)
        vae, vae_losses = vae_training.vae.eval().requires_grad_(False), vae_training.losses
    check = images[:512]
    recon = decode_latents(vae, encode_frames(vae, torch.from_numpy(check)))[0].numpy()
    psnr = float(10 * np.log10(255**2 / np.mean((recon.astype(float) - check) ** 2)))
    seconds["vae"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = encode_bank(vae, images)
    if not a.vae:  # a kept VAE keeps its latent space (`load_vae` set its scale)
        vae.register_to_config(scaling_factor=float(1 / raw.std()))
    scaling = float(vae.config.scaling_factor)
    curve, seconds["curve"] = [], 0.0

    training = UNetTraining(
        raw * scaling, captions, tokenizer, a.unet_steps, a.unet_batch, a.unet_lr, a.seed,
        ema_decay=a.ema_decay, min_snr=a.min_snr,
    )  # fmt: skip

    def measure(step):
        start = time.perf_counter()
        q = base_quality(training.ema_unet, vae, training.ema_text, tokenizer)
        curve.append({"step": step, "colour": q["colour"], "shape": q["shape"], "both": q["both"]})
        if not a.quiet:
            tqdm.write(f"step {step}: colour {q['colour']:.2f}, shape {q['shape']:.2f}")
        seconds["curve"] += time.perf_counter() - start

    training.run(a.unet_steps, a.quiet, a.curve_every, measure)
    unet, text_encoder, unet_losses = training.ema_unet.eval(), training.ema_text.eval(), training.losses
    seconds["unet"] = time.perf_counter() - t - seconds["curve"]

    t = time.perf_counter()
    quality = base_quality(unet, vae, text_encoder, tokenizer, seeds=tuple(range(a.quality_seeds)))
    curve.append({"step": a.unet_steps, **{k: quality[k] for k in ("colour", "shape", "both")}})
    seconds["quality"] = time.perf_counter() - t

    write_base(a.out, unet, vae, text_encoder)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}
    command = " ".join(["python -m memestar.tiny.train", *(sys.argv[1:] if argv is None else argv)])
    recipe = {
        "command": command,
        "settings": settings,
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "vae_psnr_db": psnr,
        "latent_scale": scaling,
        "vae_loss_last100": float(np.mean(vae_losses[-100:])) if vae_losses else None,
        "unet_loss_last100": float(np.mean(unet_losses[-100:])),
        "quality": {k: v for k, v in quality.items() if k != "rows"},
        "curve": curve,
        "versions": library_versions(),
    }
    (a.out / "recipe.json").write_text(json.dumps(recipe, indent=2) + "\n")
    if not a.quiet:
        print(json.dumps({k: v for k, v in recipe.items() if k != "versions"}, indent=2))
    return recipe | {"quality_rows": quality["rows"]}


if __name__ == "__main__":
    main()
