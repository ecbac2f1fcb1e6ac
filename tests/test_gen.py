import json
import shutil

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler
from PIL import Image

from memestar.errors import MemeError
from memestar.media.clips import read_clip
from memestar.runtime import Meme


@pytest.fixture(scope="module")
def meme_dir(tmp_path_factory, make_small_meme):
    return make_small_meme(tmp_path_factory.mktemp("gen"))


@pytest.fixture(scope="module")
def meme(meme_dir):
    return Meme.load(meme_dir)


def diffusers_loop(meme, scheduler, steps, x, text, guidance):
    """Stepping diffusers' own scheduler with the same video UNet and guidance."""
    scheduler.set_timesteps(steps)
    video = meme.backend.video
    with torch.no_grad():
        for t in scheduler.timesteps:
            u, c = video(torch.cat([x, x]), t, text).chunk(2)
            x = scheduler.step(u + guidance * (c - u), t, x).prev_sample
    return x


@pytest.mark.parametrize("name, scheduler_class", [("ddim", DDIMScheduler), ("dpm++", DPMSolverMultistepScheduler)])
def test_samplers_match_diffusers(meme, name, scheduler_class):
    text = torch.cat([meme.text_embedding(""), meme.text_embedding("a blue circle sliding")])
    x = torch.randn(meme.inversion.shape, generator=torch.Generator().manual_seed(3))
    scheduler = scheduler_class.from_config(meme.backend.base.scheduler_config)
    ours = meme.backend.sample(name, 12, x.clone(), text, 5.0)
    theirs = diffusers_loop(meme, scheduler, 12, x.clone(), text, 5.0)
    assert (ours - theirs).abs().max() < 1e-4


def test_same_seed_same_bytes_and_seed_matters(meme_dir, meme):
    again = Meme.load(meme_dir)
    for start in ("inversion", "layout", "noise"):
        a = meme.generate("a blue circle sliding", seed=7, steps=4, start=start).encode("gif")[0]
        b = again.generate("a blue circle sliding", seed=7, steps=4, start=start).encode("gif")[0]
        assert a == b
    c = meme.generate("a blue circle sliding", seed=8, steps=4, start="noise").encode("gif")[0]
    assert c != a


def test_text_embeddings_are_cached(meme, monkeypatch):
    meme.runtime.clear_text_cache()
    calls = []
    encode = meme.backend.encode_text
    monkeypatch.setattr(meme.backend, "encode_text", lambda prompts: calls.append(prompts) or encode(prompts))
    for _ in range(3):
        meme.generate("a green star sliding", steps=2)
    assert sorted(map(tuple, calls)) == [("",), ("a green star sliding",)]


@pytest.mark.parametrize("fmt", ["gif", "mp4", "webp"])
def test_each_format_decodes_to_the_right_frames(meme, fmt, tmp_path):
    g = meme.generate("a blue circle sliding", steps=3)
    data, note = g.encode(fmt)
    assert note is None
    path = tmp_path / f"out.{fmt}"
    path.write_bytes(data)
    back = read_clip(path, 8, 64, stride=1)
    assert back.frames.shape == (8, 64, 64, 3)
    assert np.abs(back.frames.astype(int) - g.frames).mean() < 16  # lossy codecs on noise-like frames


@pytest.mark.parametrize("fmt", ["gif", "mp4", "webp"])
def test_max_kb_really_fits(meme, fmt):
    g = meme.generate("a blue circle sliding", steps=3)
    full = len(g.encode(fmt)[0])
    budget = full / 1024 / 3
    data, note = g.encode(fmt, max_kb=budget)
    assert len(data) <= budget * 1024 and "fitted" in note
    with pytest.raises(MemeError, match="raise --max-kb"):
        g.encode(fmt, max_kb=0.1)


def test_long_prompt_is_truncated_with_a_note(meme):
    long_prompt = "a blue circle sliding " + "very " * 30 + "slowly"
    g = meme.generate(long_prompt, steps=2)
    assert len(g.warnings) == 1 and "over the limit of 77" in g.warnings[0] and "slowly" in g.warnings[0]


def test_cli_gen_writes_the_file_and_json(meme_dir, tmp_path, run_meme):
    out = tmp_path / "blue.webp"
    r = run_meme(
        "gen",
        "a blue circle sliding",
        "--meme",
        meme_dir,
        "-o",
        out,
        "--steps",
        3,
        "--json",
        "--sampler",
        "dpm++",
        "--start",
        "noise",
        "--seed",
        2,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["output"] == str(out) and info["frames"] == 8 and info["sampler"] == "dpm++"
    assert set(info["seconds"]) >= {"text", "denoise", "decode", "encode", "total"}
    with Image.open(out) as im:
        assert im.n_frames == 8 and im.size == (64, 64)


def test_cli_prompts_file_makes_one_output_each(meme_dir, tmp_path, run_meme):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a blue circle sliding\n\na green star sliding\n")
    r = run_meme(
        "gen", "--prompts", prompts, "--meme", meme_dir, "-o", tmp_path / "outs", "--steps", 2, "--json", "--max-kb", 40
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert [i["prompt"] for i in info] == ["a blue circle sliding", "a green star sliding"]
    for i in info:
        data = open(i["output"], "rb").read()
        assert len(data) <= 40 * 1024 and data.startswith(b"GIF89a")


def _incomplete(meme_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(meme_dir, broken)
    (broken / "adapter.safetensors").unlink()
    return broken


def _other_base(tmp_path):
    from memestar.models.random_base import build_random_base

    return build_random_base("random-tiny", tmp_path / "other-base", seed=5)


BAD = {
    "missing meme": (lambda m, t: ["x", "--meme", t / "nope"], "not found"),
    "incomplete meme": (lambda m, t: ["x", "--meme", _incomplete(m, t)], "adapter.safetensors is missing"),
    "other base": (lambda m, t: ["x", "--meme", m, "--base", _other_base(t)], "was tuned on base"),
    "empty prompt": (lambda m, t: [" ", "--meme", m], "prompt is empty"),
    "no steps": (lambda m, t: ["x", "--meme", m, "--steps", "0"], "--steps is 0"),
    "too many steps": (lambda m, t: ["x", "--meme", m, "--steps", "5000"], "--steps is 5000"),
    "guidance below 1": (lambda m, t: ["x", "--meme", m, "--guidance", "0.5"], "use 1 for no guidance"),
    "unwritable output": (lambda m, t: ["x", "--meme", m, "-o", t / "no" / "such" / "dir.gif"], "does not exist"),
    "unknown suffix": (lambda m, t: ["x", "--meme", m, "-o", t / "out.avi"], "output format"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_cli_bad_input_exits_2(case, meme_dir, tmp_path, run_meme):
    make, message = BAD[case]
    r = run_meme("gen", *make(meme_dir, tmp_path))
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
