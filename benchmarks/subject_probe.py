"""Probe for issue 33, part 2 ("learn a subject from 1 to 4 photos"): does a textual-inversion embedding, learned on
the bundled emoji base from a few renders of an emoji never named to it, draw that emoji, and does it carry into
memes tuned on other subjects (text alone, and with the photo animated at a higher strength)?

Needs `make demo` first (its memes and source frames in demo/). For each emoji of `animated_still.PHOTOS`: a new
token learned from N random renders (any place, size, background; the base's own training renders), the base's
2D UNet frozen, only the token's row of the text encoder's embedding table trained (AdamW, the diffusion loss on
the renders' latents, random timesteps). Then: the base draws "a <token>" (4 seeds x 4), read back; each demo meme
generates "a <token> popping" from its inversion (the default path) and animates a cut-out render named with the
token at strength 0.5, both read back against the meme's source.

    python benchmarks/subject_probe.py --demo demo --photos 1,4 --steps 300
"""

import argparse
import json
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from animated_still import PHOTOS, SOURCES, WORLD, photo, score
from PIL import Image

from memestar.models.base import load_base
from memestar.models.vae import encode_frames
from memestar.runtime import Meme
from memestar.sampling.ddim import alphas_cumprod
from memestar.tiny.emoji_reader import read_frame
from memestar.tiny.emoji_world import random_sprite, render
from memestar.tiny.evaluate import trajectory
from memestar.tiny.train import draw

TOKEN = "<my>"
INIT_WORD = "face"  # the token starts from a word the base knows, as diffusers' textual inversion does


def add_token(base) -> int:
    """The probe's token in the base's tokenizer and embedding table (once), its row initialised from `INIT_WORD`."""
    if TOKEN not in base.tokenizer.get_vocab():
        base.tokenizer.add_tokens([TOKEN])
        base.text_encoder.resize_token_embeddings(len(base.tokenizer), mean_resizing=False)
    row = base.tokenizer.convert_tokens_to_ids(TOKEN)
    table = base.text_encoder.get_input_embeddings().weight
    with torch.no_grad():
        table[row] = table[base.tokenizer(INIT_WORD).input_ids[1]]
    return row


def learn(base, name: str, photos: int, steps: int, lr: float, seed: int) -> float:
    """Trains the token's row on `photos` renders of `name`; seconds taken."""
    torch.manual_seed(seed)
    row = add_token(base)
    rng = np.random.default_rng(seed)
    renders = np.stack([render(random_sprite(rng, name)) for _ in range(photos)])
    latents = encode_frames(base.vae, torch.from_numpy(renders))[0].transpose(0, 1)  # n c h w
    ids = base.tokenizer(
        [f"a {TOKEN}"] * photos, padding="max_length", max_length=base.tokenizer.model_max_length, return_tensors="pt"
    ).input_ids
    acp = alphas_cumprod(base.scheduler_config)
    table = base.text_encoder.get_input_embeddings().weight
    kept, others = table.detach().clone(), torch.arange(len(table)) != row
    table.requires_grad_(True)
    optimiser = torch.optim.AdamW([table], lr=lr, weight_decay=0.0)
    t0 = time.perf_counter()
    for _ in range(steps):
        t = torch.randint(0, len(acp), (photos,))
        noise = torch.randn_like(latents)
        a = acp[t].view(-1, 1, 1, 1)
        predicted = base.unet(a.sqrt() * latents + (1 - a).sqrt() * noise, t, base.text_encoder(ids)[0]).sample
        loss = torch.nn.functional.mse_loss(predicted, noise)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            table[others] = kept[others]  # only the token's row learns
    table.requires_grad_(False)
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    p.add_argument("--photos", default="1,4")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results") / f"subject-probe-{date.today()}")
    a = p.parse_args()
    rows = []
    base = load_base("emoji")  # 2D: the base the subject is learned on and drawn by
    for m in (base.unet, base.vae, base.text_encoder):
        m.requires_grad_(False)
    for motion, source_clip in SOURCES.items():
        frames = sorted((a.demo / f"{source_clip}-frames").glob("*.png"))
        source_track = trajectory(
            WORLD.read_frames(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames]))
        )
        source = WORLD.plan[motion][0][0]
        meme = Meme.load(a.demo / f"meme-{motion}")
        in_meme = (
            meme.backend.base
        )  # the torch backend's: its UNet is the meme's video UNet, its text encoder the base's
        for photos in (int(n) for n in a.photos.split(",")):
            for name in PHOTOS[motion]:
                seconds = learn(base, name, photos, a.steps, a.lr, seed=1)
                learned = base.text_encoder.get_input_embeddings().weight[base.tokenizer.convert_tokens_to_ids(TOKEN)]
                row_id = add_token(in_meme)
                with torch.no_grad():
                    in_meme.text_encoder.get_input_embeddings().weight[row_id] = learned  # the subject, into the meme
                meme.runtime.clear_text_cache()  # the token's embedding changed under the cached prompts
                with torch.no_grad():
                    drawn = [
                        read_frame(image).name == name
                        for seed in range(4)
                        for image in draw(
                            base.unet, base.vae, base.text_encoder, base.tokenizer, [f"a {TOKEN}"] * 4, seed, 25, 5.0
                        )
                    ]
                text_clip = meme.generate(f"a {TOKEN} {motion}")
                animated = meme.generate(f"a {TOKEN} {motion}", image=photo(name, "cut out"), strength=0.5)
                row = dict(
                    motion=motion,
                    emoji=name,
                    photos=photos,
                    learn_seconds=round(seconds, 1),
                    base_draws_it=round(float(np.mean(drawn)), 3),
                    **{
                        f"text_{k}": round(v, 3)
                        for k, v in zip(
                            ("right", "source_absent", "trajectory"),
                            score(text_clip.frames, name, source, source_track),
                        )
                    },
                    **{
                        f"photo_0.5_{k}": round(v, 3)
                        for k, v in zip(
                            ("right", "source_absent", "trajectory"), score(animated.frames, name, source, source_track)
                        )
                    },
                )
                rows.append(row)
                print(row, flush=True)
    a.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
