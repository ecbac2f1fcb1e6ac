"""`meme subject learn`: a subject from 1 to 4 photos, as a word of its own (textual inversion, Gal et al. 2022).

The base stays frozen; only the new token's row of the text encoder's embedding table learns, from "a <name>", with
the diffusion loss on views of the photos at random timesteps. A view of a photo with its own transparency is its
cut-out at a random size and place on a random plain background (as the emoji world renders its emoji); a photo with
none is a random square crop. The views are encoded once. The subject then works in every meme of that base
(`meme gen --subject NAME`); `formats/subject_file.py` holds what is written.
"""

import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ..checks import MAX_SUBJECT_PHOTOS
from ..device import pick_device
from ..errors import Interrupted, MemeError
from ..files import replace_folder, write_error
from ..formats.meme_folder import base_record, library_versions
from ..formats.subject_file import SUBJECT_JSON, SubjectTrainingRecord, token_of, write_subject
from ..media.matte import has_own_alpha
from ..media.source import open_image
from ..models.base import load_base
from ..models.text import add_token
from ..models.vae import encode_pixels, vae_scale_factor
from ..sampling.ddim import alphas_cumprod
from .options import SubjectOptions
from .tune import loss_ends

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
VIEWS_PER_PHOTO = 16
BATCH = 4
# where the token starts (diffusers' textual inversion starts from a word too): what
# benchmarks/results/learned-subject-2026-12-07.md measured
INIT_WORD = "face"
CUT_OUT_SIZES = (0.45, 0.85)  # a cut-out's longer side, as a share of the view's
CROP_SCALES = (0.75, 1.0)  # an opaque photo's crop, as a share of its shorter side


def photo_paths(photos: Path) -> list[Path]:
    """The photos a subject is learned from: `photos` itself, or the images in the folder `photos`; 1 to 4."""
    if photos.is_file():
        paths = [photos]
    elif photos.is_dir():
        paths = sorted(p for p in photos.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    else:
        raise MemeError(f"{photos} not found: give a photo, or a folder of 1 to {MAX_SUBJECT_PHOTOS} photos")
    if not 1 <= len(paths) <= MAX_SUBJECT_PHOTOS:
        raise MemeError(
            f"{photos} holds {len(paths)} photos ({', '.join(PHOTO_SUFFIXES)}): a subject is learned from 1 to "
            f"{MAX_SUBJECT_PHOTOS}"
        )
    return paths


def read_photo(path: Path) -> Image.Image:
    with open_image(path, "a photo") as image:
        image.seek(0)
        return image.convert("RGBA")


def views(photo: Image.Image, side: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` random views of `photo` at `side` pixels (see the module's docstring) -> `(n, side, side, 3)` uint8."""
    own_cut_out = has_own_alpha(np.asarray(photo))
    if own_cut_out:
        photo = photo.crop(photo.getchannel("A").getbbox() or (0, 0, photo.width, photo.height))
    out = []
    for _ in range(n):
        if own_cut_out:
            longer = round(side * rng.uniform(*CUT_OUT_SIZES))
            k = longer / max(photo.size)
            small = photo.resize(
                (max(1, round(photo.width * k)), max(1, round(photo.height * k))), Image.Resampling.LANCZOS
            )
            view = Image.new("RGBA", (side, side), tuple(int(c) for c in rng.integers(0, 256, 3)) + (255,))
            x, y = (int(rng.integers(0, side - s + 1)) for s in small.size)
            view.alpha_composite(small, (x, y))
        else:
            crop = round(min(photo.size) * rng.uniform(*CROP_SCALES))
            x, y = int(rng.integers(0, photo.width - crop + 1)), int(rng.integers(0, photo.height - crop + 1))
            view = photo.crop((x, y, x + crop, y + crop)).resize((side, side), Image.Resampling.LANCZOS)
        out.append(np.asarray(view.convert("RGB")))
    return np.stack(out)


def learn_subject(o: SubjectOptions, on_step=None, stop=None) -> dict:
    """Learns the subject and writes its folder (a new one replaces the old only once complete); its summary.
    `on_step(step, loss)` follows the learning (a server's job: its progress, and its device gate); `stop` (a
    threading.Event), once set, ends it at its next step (Interrupted), writing nothing."""
    o.check()
    out = o.out or Path("subjects") / o.name
    if out.exists() and not out.is_dir():
        raise MemeError(f"output {out} exists and is not a folder: choose another --out")
    if (out / SUBJECT_JSON).exists() and not o.force:
        raise MemeError(f"{out} already holds a subject: choose another --out, or pass --force to replace it")
    photos = [read_photo(p) for p in photo_paths(o.photos)]  # every photo readable before the base loads
    device, seconds = pick_device(o.device), {}
    t = time.perf_counter()
    base = load_base(o.base, device=device, config=o.base_config, allow_pickle=o.allow_pickle)
    seconds["load"] = time.perf_counter() - t
    side = o.size or base.unet.config.sample_size * vae_scale_factor(base.vae)
    for photo in photos:  # views are at most the photo's shorter side: a phone photo is worked small, once
        photo.thumbnail((2 * side, 2 * side), Image.Resampling.LANCZOS)
    rng = np.random.default_rng(o.seed)
    torch.manual_seed(o.seed)

    t = time.perf_counter()
    pixels = torch.from_numpy(np.concatenate([views(p, side, rng, VIEWS_PER_PHOTO) for p in photos]))
    latents = encode_pixels(base.vae, pixels[:, None])[:, :, 0]  # n c h w: each view a clip of one frame
    seconds["encode"] = time.perf_counter() - t

    tokenizer, text_encoder = base.tokenizer, base.text_encoder
    token = token_of(o.name)
    row = add_token(tokenizer, text_encoder, token)
    table = text_encoder.get_input_embeddings().weight
    init = tokenizer(INIT_WORD, add_special_tokens=False).input_ids
    with torch.no_grad():
        table[row] = table[init].mean(0)
    kept, others = table.detach().clone(), torch.arange(len(table), device=table.device) != row
    ids = tokenizer(
        [f"a {token}"] * BATCH, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt"
    ).input_ids.to(device)
    acp = alphas_cumprod(base.scheduler_config).to(device)
    table.requires_grad_(True)
    optimiser = torch.optim.AdamW([table], lr=o.lr, weight_decay=0.0)
    losses = []
    t = time.perf_counter()
    for step in tqdm(range(1, o.steps + 1), desc="learning", unit="step", disable=o.quiet):
        if stop is not None and stop.is_set():
            raise Interrupted(f"learning {o.name} stopped at step {step - 1} of {o.steps}")
        pick = torch.randint(0, len(latents), (BATCH,), device=device)
        steps = torch.randint(0, len(acp), (BATCH,), device=device)
        noise = torch.randn_like(latents[pick])
        a = acp[steps].view(-1, 1, 1, 1)
        noisy = a.sqrt() * latents[pick] + (1 - a).sqrt() * noise
        loss = torch.nn.functional.mse_loss(base.unet(noisy, steps, text_encoder(ids)[0]).sample, noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            table[others] = kept[others]  # only the token's row learns
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    table.requires_grad_(False)
    seconds["learn"] = time.perf_counter() - t
    if not all(np.isfinite(losses)):
        raise MemeError(f"learning {o.name} diverged (a non-finite loss): lower --lr")

    first_loss, final_loss = loss_ends(losses)
    tmp = out.with_name(f".{out.name}-learning-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        write_subject(
            tmp,
            table[row].detach(),
            name=o.name,
            token=token,
            base=base_record(base),
            training=SubjectTrainingRecord(
                photos=len(photos),
                steps=o.steps,
                lr=o.lr,
                seed=o.seed,
                init_word=INIT_WORD,
                first_loss=first_loss,
                final_loss=final_loss,
                seconds=round(sum(seconds.values()), 3),
                device=str(device),
            ),
            versions=library_versions(),
        )
        replace_folder(tmp, out)
    except OSError as e:
        raise write_error(e, out) from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "subject": str(out),
        "name": o.name,
        "token": token,
        "base": base.reference,
        "photos": len(photos),
        "steps": o.steps,
        "first_loss": round(first_loss, 5),
        "final_loss": round(final_loss, 5),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
