import json
import os
import shutil
import signal

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from memestar.errors import Interrupted, MemeError, TrainingFailed
from memestar.formats.meme_folder import load_inversion, read_meme
from memestar.media.clips import read_clip
from memestar.media.writers import write_gif
from memestar.models.adapter import load_adapter
from memestar.models.base import load_base
from memestar.models.layout import DEFAULT_FRAME_ATTENTION, FRAME_ATTENTION_MODES
from memestar.models.text import encode_prompts
from memestar.models.vae import encode_frames
from memestar.models.video_unet import VideoUNet
from memestar.train.command import train_meme
from memestar.train.inversion import invert_clip, sample_from
from memestar.train.options import TuneSettings
from memestar.train.tune import tune

PROMPT = "a red square sliding"


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory, sliding_square):
    return write_gif(sliding_square(), tmp_path_factory.mktemp("clip") / "slide.gif", fps=8)


@pytest.fixture(scope="module")
def meme(clip_path, tmp_path_factory, train_options):
    out = tmp_path_factory.mktemp("memes") / "slide"
    return out, train_meme(train_options(clip_path, out))


def window_means(losses, n=20):
    return np.mean(losses[:n]), np.mean(losses[-n:])


def test_loss_falls_and_not_without_learning(meme, clip_path, tmp_path, train_options):
    """Calibration (random-tiny, this clip, 60 steps): lr 1e-2 ends near 0.6x its first 20 steps' mean;
    lr 0 stays within 5% (the timesteps differ, the model does not). 0.8 separates the two."""
    out, summary = meme
    first, last = window_means(read_meme(out).training.losses)
    assert last < 0.8 * first, (first, last)
    frozen = train_meme(train_options(clip_path, tmp_path / "lr0", lr=0.0, steps=40, inversion_steps=2))
    assert frozen["final_loss"] > 0.9 * frozen["first_loss"]


def test_no_preview_leaves_none_behind(meme, clip_path, tmp_path, train_options):
    """`--no-preview` (the eval's and the demo's memes): no preview is sampled, and a forced retrain drops the old one,
    which showed the meme before it."""
    out = tmp_path / "again"
    shutil.copytree(meme[0], out)
    summary = train_meme(train_options(clip_path, out, steps=2, inversion_steps=2, preview=False, force=True))
    assert "preview" not in summary["seconds"] and "preview" in meme[1]["seconds"]
    assert not (out / "preview.gif").exists() and read_meme(out).training.steps == 2


def test_meme_folder_is_complete_and_loads(meme):
    out, summary = meme
    meta = read_meme(out)
    assert {p.name for p in out.iterdir()} == {
        "meme.json",
        "adapter.safetensors",
        "inversion.safetensors",
        "preview.gif",
    }
    assert meta.prompt == PROMPT and meta.frames == 8 and meta.size == 64
    assert meta.base.reference == "random-tiny" and len(meta.training.losses) == 60
    assert set(meta.versions) >= {"torch", "diffusers", "transformers", "memestar"}
    assert load_inversion(out).shape == (1, 4, 8, 8, 8)
    assert read_clip(out / "preview.gif", 8, 64, stride=1).frames.shape == (8, 64, 64, 3)
    base = load_base("random-tiny")
    load_adapter(VideoUNet(base.unet), out / "adapter.safetensors", base.reference, base.fingerprint)
    assert summary["trainable_parameters"] == VideoUNet(load_base("random-tiny").unet).parameter_counts()["trainable"]
    assert summary["seconds"]["tune"] > 0 and summary["peak_memory_bytes"] > 0
    assert meta.frame_positions is True  # the default, recorded


def test_a_meme_without_frame_positions_loads_and_generates_as_one(clip_path, tmp_path, train_options):
    """`--no-frame-positions` is recorded in meme.json and the adapter, and the runtime builds its UNet without
    them (the adapter check would refuse a UNet with them)."""
    from memestar.runtime import Meme

    out = tmp_path / "no-positions"
    train_meme(train_options(clip_path, out, steps=6, inversion_steps=2, frame_positions=False))
    assert read_meme(out).frame_positions is False
    meme = Meme.load(out)
    assert meme.runtime.video.frame_positions is False
    assert meme.generate("a red square sliding", steps=2).frames.shape == (8, 64, 64, 3)


def test_a_meme_with_the_other_frame_attention_loads_and_generates_with_it(clip_path, tmp_path, train_options):
    """`--frame-attention` other than the default is recorded in meme.json and the adapter; the runtime builds it
    (the adapter check would refuse the default)."""
    from memestar.runtime import Meme

    other = next(m for m in FRAME_ATTENTION_MODES if m != DEFAULT_FRAME_ATTENTION)
    out = tmp_path / "other-attention"
    train_meme(train_options(clip_path, out, steps=6, inversion_steps=2, frame_attention=other))
    assert read_meme(out).frame_attention == other
    meme = Meme.load(out)
    assert meme.runtime.video.frame_attention == other
    assert meme.generate("a red square sliding", steps=2).frames.shape == (8, 64, 64, 3)


@pytest.mark.parametrize("tuned", ["all", "temporal"])
def test_frozen_weights_stay_bit_identical(tuned, tiny, clip_path, sliding_square):
    video = VideoUNet(tiny.unet)
    before = {n: p.detach().clone() for n, p in video.unet.named_parameters()}
    latents = encode_frames(tiny.vae, torch.from_numpy(sliding_square())).float()
    text = encode_prompts(tiny.tokenizer, tiny.text_encoder, [PROMPT])
    tune(
        video,
        latents,
        text,
        tiny.scheduler_config,
        TuneSettings(steps=5, lr=1e-2, checkpoint_every=0, tuned=tuned),
        dtype=torch.float32,
        checkpoint=clip_path.parent / "unused.safetensors",
        run_key={},
        quiet=True,
    )
    trainable = set(video.trainable_parameters(tuned))
    assert trainable and all(("_temp." in n) or tuned == "all" for n in trainable)
    assert len(trainable) < len(video.trainable_parameters()) or tuned == "all"  # temporal: no query moves
    for n, p in video.unet.named_parameters():
        if n in trainable:
            assert not torch.equal(p, before[n]), n
        else:
            assert torch.equal(p, before[n]), n


def test_resume_after_ctrl_c_equals_uninterrupted(clip_path, tmp_path, train_options):
    kw = dict(steps=8, checkpoint_every=3, inversion_steps=2)
    straight = tmp_path / "straight"
    train_meme(train_options(clip_path, straight, **kw))

    def ctrl_c_at_step_5(step, loss):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    resumed = tmp_path / "resumed"
    with pytest.raises(Interrupted, match="--resume"):
        train_meme(train_options(clip_path, resumed, **kw), on_step=ctrl_c_at_step_5)
    assert sorted(p.name for p in resumed.iterdir()) == ["checkpoint.safetensors"]
    with pytest.raises(MemeError, match="unfinished run"):
        train_meme(train_options(clip_path, resumed, **kw))
    with pytest.raises(MemeError, match="other settings"):
        train_meme(train_options(clip_path, resumed, **{**kw, "lr": 5e-3}, resume=True))
    train_meme(train_options(clip_path, resumed, **kw, resume=True))
    a, b = load_file(straight / "adapter.safetensors"), load_file(resumed / "adapter.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = [read_meme(d).training.losses for d in (straight, resumed)]
    assert losses[0] == losses[1]
    assert not (resumed / "checkpoint.safetensors").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(clip_path, tmp_path, monkeypatch, train_options):
    import memestar.train.losses as losses_module

    calls = []
    real_mse = losses_module.F.mse_loss

    def mse_nan_from_step_5(pred, target):
        calls.append(1)
        loss = real_mse(pred, target)
        return loss * float("nan") if len(calls) >= 5 else loss

    monkeypatch.setattr(losses_module.F, "mse_loss", mse_nan_from_step_5)
    out = tmp_path / "nan"
    with pytest.raises(TrainingFailed, match="step 5") as e:
        train_meme(train_options(clip_path, out, steps=8, checkpoint_every=2, inversion_steps=2))
    assert e.value.exit_code == 1
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.safetensors"]
    saved = load_file(out / "checkpoint.safetensors")
    assert all(torch.isfinite(t).all() for t in saved.values())
    monkeypatch.undo()
    train_meme(train_options(clip_path, out, steps=8, checkpoint_every=2, inversion_steps=2, resume=True))
    assert read_meme(out).training.steps == 8


def latent_psnr(x, ref):
    peak = (ref.max() - ref.min()).item()
    return 10 * np.log10(peak**2 / ((x - ref) ** 2).mean().item())


def test_tuning_helps_reproduce_the_clip_from_its_inversion(meme, clip_path):
    """From the stored inversion, with the training prompt and no guidance, each model's sample is compared with
    the clip's latents. random-tiny's random VAE decodes everything to near-noise, so the comparison is made in
    latent space, where the VAE plays no part."""
    out, _ = meme
    meta = read_meme(out)
    start = load_inversion(out)
    scores = {}
    for tuned in (False, True):
        base = load_base("random-tiny")
        video = VideoUNet(base.unet)
        if tuned:
            load_adapter(video, out / "adapter.safetensors", base.reference, base.fingerprint)
        text, empty = encode_prompts(base.tokenizer, base.text_encoder, [PROMPT, ""]).chunk(2)
        clip_latents = encode_frames(base.vae, torch.from_numpy(read_clip(clip_path, 8, 64).frames)).float()
        sample = sample_from(video, start, text, empty, base.scheduler_config, meta.inversion.steps, 1.0)
        scores[tuned] = latent_psnr(sample, clip_latents)
    print(f"\nlatent PSNR from the inversion: untuned {scores[False]:.1f} dB, tuned {scores[True]:.1f} dB")
    assert scores[True] > scores[False] + 6


BAD = {
    "missing clip": (["nope.mp4", "--text", PROMPT], "not found"),
    "empty prompt": (["CLIP", "--text", "  "], "prompt is empty"),
    "no frames": (["CLIP", "--text", PROMPT, "--frames", "0"], "--frames is 0"),
    "no steps": (["CLIP", "--text", PROMPT, "--steps", "0"], "--steps is 0"),
    "size": (["CLIP", "--text", PROMPT, "--size", "100"], "multiple of 8"),
    "base offline": (["CLIP", "--text", PROMPT, "--base", "nobody/no-such-model"], "could not load base"),
    "existing meme": (["CLIP", "--text", PROMPT, "--out", "MEME"], "already holds a meme"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_cli_bad_input_exits_2_and_keeps_files(case, meme, clip_path, tmp_path, run_meme):
    out, _ = meme
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    args, message = BAD[case]
    args = [str(clip_path) if a == "CLIP" else str(out) if a == "MEME" else a for a in args]
    defaults = ["--base", "random-tiny", "--frames", "4", "--size", "64", "--steps", "2", "--out", tmp_path / "new"]
    r = run_meme("train", *defaults, *args)  # the case's options come last and win
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_smoke_on_the_real_clip(tmp_path, run_meme, car_clip):
    r = run_meme(
        "train",
        car_clip,
        "--text",
        "a car turning",
        "--base",
        "random-tiny",
        "--out",
        tmp_path / "car",
        "--frames",
        4,
        "--size",
        64,
        "--steps",
        3,
        "--inversion-steps",
        2,
        "--json",
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["steps"] == 3 and np.isfinite(summary["final_loss"])
    assert read_meme(tmp_path / "car").clip.indices == [0, 20, 40, 60]
    assert summary["subject_track"] is False  # a street scene, no plain background: nothing to follow
    assert read_meme(tmp_path / "car").subject_track is None


def test_inversion_and_preview_let_others_in_between_steps(tiny, text_embedding):
    """A server's training job yields the device between every step of the inversion and the preview too."""
    video, calls = VideoUNet(tiny.unet), []
    text = text_embedding(tiny)
    latents = torch.randn(1, 4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    inverted = invert_clip(video, latents, text, tiny.scheduler_config, 4, between_steps=lambda: calls.append("i"))
    sample_from(video, inverted, text, text, tiny.scheduler_config, 3, 5.0, between_steps=lambda: calls.append("p"))
    assert calls == ["i"] * 4 + ["p"] * 3
    alone = invert_clip(video, latents, text, tiny.scheduler_config, 4)
    assert torch.equal(alone, inverted)  # yielding changes nothing in the result
