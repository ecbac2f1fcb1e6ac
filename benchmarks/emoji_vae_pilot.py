"""The emoji VAE's width and crop training, measured:

    python benchmarks/emoji_vae_pilot.py "(32,64,64)" 1600 32 0.125 32

Arguments: block widths, steps, crop side (0: whole frames), share of the steps on whole frames, batch. Trains the
emoji recipe's VAE (memestar/tiny/emoji_train.py, with the widths given) on 5,000 renders of the emoji world and
prints, four times on the way, the PSNR on 224 held-out renders and how often the emoji reader reads a
reconstruction as it reads the original.
"""

import sys
import time

import numpy as np
import torch

from memestar.models.vae import decode_latents, encode_frames
from memestar.tiny.emoji_reader import read_frame
from memestar.tiny.emoji_train import VAE_CONFIG, make_bank
from memestar.tiny.train import VAETraining


def main(widths: str, steps: str, crop: str, whole_share: str, batch: str) -> None:
    torch.set_num_threads(2)
    images, _ = make_bank(6000, 0)
    config = dict(VAE_CONFIG, block_out_channels=tuple(int(w) for w in widths.strip("()").split(",")))
    training = VAETraining(images[:5000], int(steps), int(batch), 2e-3, 0, config, int(crop), float(whole_share))
    check, start = images[5000:5224], time.perf_counter()
    for quarter in range(1, 5):
        training.run(int(steps) * quarter // 4, quiet=True)
        vae = training.vae.eval()
        with torch.no_grad():
            recon = decode_latents(vae, encode_frames(vae, torch.from_numpy(check)))[0].numpy()
        vae.train()
        psnr = 10 * np.log10(255**2 / np.mean((recon.astype(float) - check) ** 2))
        reads = np.mean([read_frame(r).name == read_frame(c).name for r, c in zip(recon, check)])
        print(
            f"step {training.step}: PSNR {psnr:.2f} dB, read as the original {reads:.3f}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main(*sys.argv[1:])
