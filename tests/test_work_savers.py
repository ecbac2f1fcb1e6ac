"""The denoising loop's work savers, each held to what it stands for: guidance only on the early steps
(`sampling/guidance.py`), deep features reused between steps (`sampling/deep_cache.py`), and the subject measured on the
latents instead of decoded frames (`sampling/follow.py`)."""

import itertools

import numpy as np
import pytest
import torch

from memestar.errors import MemeError
from memestar.models.video_unet import VideoUNet
from memestar.runtime import Meme
from memestar.sampling.deep_cache import DeepCache, cache_plan
from memestar.sampling.follow import latent_subject_track, subject_track
from memestar.sampling.guidance import guided_steps

PROMPT = "a blue circle sliding"
CONFIG = {"num_train_timesteps": 1000}


def test_guidance_stops_below_its_share_of_the_schedule():
    timesteps = [901, 801, 601, 501, 499, 301, 1]
    assert guided_steps(timesteps, CONFIG, 0.0) == [True] * 7
    assert guided_steps(timesteps, CONFIG, 0.5) == [True] * 4 + [False] * 3  # 501 and above
    assert guided_steps(timesteps, CONFIG, 1.0) == [False] * 7


@pytest.mark.parametrize(
    "guided, interval, plan",
    [
        ([True] * 5, 1, [None] * 5),
        ([True] * 5, 2, ["store", "reuse", "store", "reuse", "store"]),
        ([True] * 3 + [False] * 4, 3, ["store", "reuse", "reuse", "store", "reuse", "reuse", "store"]),
        ([True, False, False, False], 3, ["store", "reuse", "reuse", "store"]),  # a guided store serves unguided steps
        ([False, True, True], 2, ["store", "store", "reuse"]),  # an unguided store cannot serve a guided step
    ],
)
def test_the_cache_plan_stores_every_interval_and_when_rows_grow(guided, interval, plan):
    assert cache_plan(guided, interval) == plan


@pytest.fixture(scope="module")
def cached_unet(tiny_dir):
    from memestar.models.base import load_base

    base = load_base(str(tiny_dir))
    video = VideoUNet(base.unet)
    with torch.no_grad():  # temporal attention that does something, so that skipping it would show
        for name, p in video.unet.named_parameters():
            if "attn_temp.to_out" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(1))
    return video, DeepCache(video.unet)


def unet_inputs(seed=0, n=1, frames=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, frames, 8, 8, generator=g), torch.randn(n, 77, 32, generator=g)


def test_reusing_a_steps_own_deep_features_gives_the_whole_unets_output(cached_unet):
    """The reuse path is the shallow level plus exactly what the deep path handed it: on the same inputs it equals
    the whole UNet, and it does depend on the kept features."""
    video, cache = cached_unet
    x, text = unet_inputs()
    with torch.no_grad():
        plain = video(x, 500, text)
        with cache.mode("store"):
            stored = video(x, 500, text)
        with cache.mode("reuse"):
            reused = video(x, 500, text)
        cache.features = cache.features + 1
        with cache.mode("reuse"):
            shifted = video(x, 500, text)
    assert torch.equal(plain, stored)
    assert torch.allclose(reused, plain, atol=1e-5), (reused - plain).abs().max()
    assert not torch.allclose(shifted, plain, atol=1e-3)


def test_an_unguided_step_reuses_the_conditional_half_of_a_guided_one(cached_unet):
    video, cache = cached_unet
    x, cond = unet_inputs(1, n=2)
    uncond = torch.randn(cond.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        alone = video(x, 300, cond)
        with cache.mode("store"):
            video(torch.cat([x, x]), 300, torch.cat([uncond, cond]))  # (unconditional, conditional) rows
        with cache.mode("reuse"):
            reused = video(x, 300, cond)
    assert torch.allclose(reused, alone, atol=1e-5), (reused - alone).abs().max()


def test_a_reuse_with_nothing_stored_for_its_rows_is_refused(cached_unet):
    video, cache = cached_unet
    x, text = unet_inputs(n=1)
    with torch.no_grad():
        with cache.mode("store"):
            video(x, 500, text)
        with cache.mode("reuse"), pytest.raises(RuntimeError, match="no stored step"):
            video(torch.cat([x, x]), 500, torch.cat([text, text]))


@pytest.fixture(scope="module")
def tracked_meme(small_meme_dir):
    return Meme.load(small_meme_dir)


def test_guidance_until_one_is_no_guidance_and_until_zero_the_default(tracked_meme):
    unguided = tracked_meme.generate(PROMPT, steps=4, guidance=1.0)
    never = tracked_meme.generate(PROMPT, steps=4, guidance=5.0, guidance_until=1.0)
    always = tracked_meme.generate(PROMPT, steps=4, guidance=5.0, guidance_until=0.0)
    half = tracked_meme.generate(PROMPT, steps=4, guidance=5.0, guidance_until=0.5)
    assert np.array_equal(unguided.frames, never.frames)
    assert not np.array_equal(always.frames, half.frames) and not np.array_equal(half.frames, never.frames)
    assert half.settings["guidance_until"] == 0.5 and unguided.settings["guidance_until"] is None


def test_a_cached_step_stands_for_the_whole_one_on_the_tiny_base():
    """Along a DDIM 12 run of the bundled tiny base, each step's output with the deep features of the step before is
    within 10% (relative L2) of the whole UNet's at that step (measured: 1.3% to 8.7%, the last step the farthest)."""
    from memestar.models.base import load_base
    from memestar.models.text import encode_prompts
    from memestar.sampling.ddim import DDIMSchedule

    base = load_base("tiny")
    video = VideoUNet(base.unet)
    cache = DeepCache(video.unet)
    text = encode_prompts(base.tokenizer, base.text_encoder, ["a blue square bouncing"])
    schedule = DDIMSchedule(base.scheduler_config, 12)
    x = torch.randn(1, 4, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    errors, kept = [], None
    with torch.no_grad():
        for i, t in enumerate(schedule.timesteps):
            with cache.mode("store"):
                whole = video(x, t, text)
            if kept is not None:
                current, cache.features = cache.features, kept
                with cache.mode("reuse"):
                    errors.append(float((video(x, t, text) - whole).norm() / whole.norm()))
                cache.features = current
            kept = cache.features
            x = schedule.step(whole, i, x)
    assert 0 < max(errors) < 0.1, errors


def test_generation_with_a_cache_interval_differs_and_says_so(tracked_meme):
    whole = tracked_meme.generate(PROMPT, steps=6, guidance=5.0, cache_interval=1)
    cached = tracked_meme.generate(PROMPT, steps=6, guidance=5.0, cache_interval=2)
    assert cached.settings["cache_interval"] == 2 and whole.settings["cache_interval"] == 1
    assert not np.array_equal(whole.frames, cached.frames)


def test_the_work_savers_are_refused_out_of_range_in_one_line(small_meme_dir, meme_main, tmp_path):
    for option, value, message in (
        ("--guidance-until", "1.5", "--guidance-until"),
        ("--cache-interval", "0", "--cache-interval"),
        ("--follow-measure", "decoder", "--follow-measure"),
    ):
        code, _, err = meme_main("gen", PROMPT, "--meme", small_meme_dir, option, value, "-o", tmp_path / "x.gif")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(MemeError, match="--cache-interval"):
        Meme.load(small_meme_dir).generate(PROMPT, cache_interval=9)
    assert not list(tmp_path.iterdir())


def test_the_latent_subject_track_agrees_with_the_pixel_one_on_the_tiny_world():
    """The tiny base's VAE on world clips: the track measured on the latents is within 0.02 half-widths of the one
    measured on the frames in place (x, y; mean over frames) and 0.05 in size (measured: 0.006 / 0.012 / 0.030 over
    all 120 clips)."""
    from memestar.models.base import load_base
    from memestar.models.vae import encode_frames
    from memestar.tiny.world import Sprite, render_clip

    vae = load_base("tiny").vae
    errors = []
    for motion, colour, shape in itertools.product(
        ("bouncing", "growing", "popping"), ("red", "yellow"), ("circle", "triangle", "star")
    ):
        frames = torch.from_numpy(render_clip(Sprite(colour, shape), motion))
        latents = encode_frames(vae, frames)
        errors.append((latent_subject_track(latents, 4) - subject_track(frames[None].float())).abs()[0])
    mean = torch.cat(errors).mean(0)
    assert mean[0] < 0.02 and mean[1] < 0.02 and mean[2] < 0.05, mean
