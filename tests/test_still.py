"""Animating a still (`meme gen --image`, `Meme.generate(image=...)`): its subject cut out (alpha, matte, or whole),
placed on the meme's subject track, and refined by the meme from the strength's step; what it is prompted with; and
every bad photo or meme refused in one line before a model loads."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from memestar.errors import MemeError
from memestar.formats.meme_folder import MEME_JSON, read_meme
from memestar.runtime import Meme
from memestar.runtime.settings import GenRequest, GenSettings
from memestar.runtime.still import WORK_SIDE, cut_out, place_along_track, read_still
from memestar.sampling.follow import subject_track
from memestar.tiny.emoji_world import atlas
from memestar.tiny.worlds import WORLDS


def disc(side=40, colour=(230, 60, 40), background=None) -> np.ndarray:
    """A disc of radius side/3 in the middle: RGBA with a transparent background, or RGB on `background`."""
    yy, xx = np.mgrid[:side, :side]
    inside = (yy - side / 2 + 0.5) ** 2 + (xx - side / 2 + 0.5) ** 2 < (side / 3) ** 2
    if background is None:
        out = np.zeros((side, side, 4), np.uint8)
        out[inside] = (*colour, 255)
        return out
    out = np.full((side, side, 3), background, np.uint8)
    out[inside] = colour
    return out


def test_a_subject_is_cut_by_its_alpha_else_by_a_plain_background_else_taken_whole():
    rows, cols = np.nonzero(disc(40)[..., 3])
    side = rows.max() - rows.min() + 1  # the disc's
    own = cut_out(disc(40))
    assert own.shape[:2] == (side, side) and own[side // 2, side // 2, 3] == 255 and own[0, 0, 3] == 0
    on_plain = cut_out(np.concatenate([disc(40, background=(240, 240, 230)), np.full((40, 40, 1), 255, np.uint8)], -1))
    assert abs(on_plain.shape[0] - side) <= 2 and on_plain[0, 0, 3] == 0 and on_plain[side // 2, side // 2, 3] == 255
    photo = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)  # no plain background
    whole = cut_out(np.concatenate([photo, np.full((30, 50, 1), 255, np.uint8)], -1))
    assert whole.shape == (30, 50, 4) and (whole[..., 3] == 255).all()
    with pytest.raises(MemeError, match="no subject to cut out"):
        cut_out(np.zeros((40, 40, 4), np.uint8), "empty.png")
    big = np.asarray(Image.fromarray(disc(40)).resize((2000, 2000)))  # a phone photo's size: worked small
    assert max(cut_out(big).shape[:2]) <= WORK_SIDE


def test_a_placed_subject_sits_on_the_track_at_its_size():
    track = np.stack([np.linspace(-0.5, 0.5, 8), np.linspace(0.3, -0.2, 8), np.linspace(0.2, 0.6, 8)], 1)
    frames = place_along_track(disc(200), track, np.array([128.0, 128.0, 128.0]), 64)  # a big still, made small
    assert frames.shape == (8, 64, 64, 3) and tuple(frames[0, 0, 0]) == (128, 128, 128)
    measured = subject_track(torch.from_numpy(frames)[None].float())[0].numpy()
    assert np.abs(measured[:, :2] - track[:, :2]).max() < 0.04  # a pixel is 0.03 half-widths
    assert np.abs(measured[:, 2] / track[:, 2] - 1).max() < 0.15


def test_a_photo_over_the_caps_or_unreadable_is_one_line(tmp_path):
    Image.new("RGB", (5000, 5000)).save(tmp_path / "huge.png")
    (tmp_path / "text.png").write_text("not an image")
    cases = {
        "huge.png": "over the cap of 16,777,216",
        "text.png": "not an image Pillow can read",
        "missing.png": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(MemeError, match=message):
            read_still(tmp_path / name)
    with pytest.raises(MemeError, match="MiB, over the cap"):
        read_still(tmp_path / "upload.png", bytes(17 * 2**20))
    animated = [Image.new("RGB", (20, 20), c) for c in ((250, 0, 0), (0, 250, 0))]
    animated[0].save(tmp_path / "two.gif", save_all=True, append_images=animated[1:])
    assert tuple(read_still(tmp_path / "two.gif")[0, 0]) == (250, 0, 0, 255)  # its first frame


@pytest.fixture(scope="module")
def popping(emoji_popping_meme):
    return Meme.load(emoji_popping_meme)


def test_an_animated_still_keeps_the_photos_subject_on_the_memes_track(popping):
    """A koala the tuning never saw, animated by the popping cat's meme: the reader names the koala where the source
    has a face to name, and it pops where the cat popped."""
    koala = np.asarray(atlas()["koala"])
    g = popping.generate(image=koala)
    assert g.prompt == "popping" and g.settings["negative"] == "a cat face" and g.settings["strength"] == 0.2
    world = WORLDS["emoji"]
    reads = [r.subject[0] if r.subject else None for r in world.read_frames(g.frames)]
    source = popping.manifest.subject_track.tensor().numpy()
    grown = source[:, 2] > 0.3  # the first frames are specks, too small to name
    assert np.mean([r == "koala" for r, big in zip(reads, grown) if big]) >= 0.9, reads
    measured = subject_track(torch.from_numpy(g.frames)[None].float())[0].numpy()
    moving = source.std(0) > 0.03  # popping: the size
    assert moving.any()
    for k in np.nonzero(moving)[0]:
        assert np.corrcoef(source[:, k], measured[:, k])[0, 1] >= 0.9, (k, source[:, k], measured[:, k])

    redrawn = popping.generate(image=koala, strength=0.6)
    change = np.abs(redrawn.frames.astype(int) - g.frames.astype(int)).mean()
    assert change > 2  # a higher strength redraws more of the photo

    fox = cut_out(np.asarray(atlas()["fox face"]))
    requests = [
        GenRequest("popping", GenSettings(negative="a cat face"), cut_out(koala)),
        GenRequest("popping", GenSettings(negative="a cat face"), fox),
    ]
    together = popping.generate_batch(requests)
    assert together[0].batch_size == 2
    assert np.abs(together[0].frames.astype(int) - g.frames.astype(int)).max() <= 2  # each as alone


def test_a_still_needs_a_meme_with_a_subject_track(small_meme_dir, tmp_path, run_meme):
    folder = tmp_path / "no-track"
    shutil.copytree(small_meme_dir, folder)
    manifest = read_meme(folder)
    manifest.subject_track = None
    manifest.to_json(folder / MEME_JSON)
    Image.fromarray(disc(40)).save(tmp_path / "disc.png")
    with pytest.raises(MemeError, match="no subject track to place a still on"):
        Meme.load(folder).generate(image=disc(40))
    r = run_meme("gen", "--image", tmp_path / "disc.png", "--meme", folder, "-o", tmp_path / "out.gif")
    assert r.returncode == 2 and "no subject track" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.gif").exists()


def test_cli_gen_image_writes_the_clip_prompted_with_the_memes_action(small_meme_dir, tmp_path, run_meme):
    assert read_meme(small_meme_dir).subject_track.background == [128.0, 128.0, 128.0]  # the clip's grey, stored
    Image.fromarray(disc(40)).save(tmp_path / "my cat.png")
    out = tmp_path / "out.gif"
    r = run_meme(
        "gen",
        "--image",
        tmp_path / "my cat.png",
        "--meme",
        small_meme_dir,
        "-o",
        out,
        "--steps",
        "4",
        "--strength",
        "0.5",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["prompt"] == "sliding" and info["negative"] == "a red square" and info["strength"] == 0.5
    assert info["output"] == str(out) and Image.open(out).n_frames == 8
    r = run_meme(
        "gen", "--image", tmp_path / "my cat.png", "--meme", small_meme_dir, "--steps", "2", "-q", cwd=tmp_path
    )
    assert r.returncode == 0 and (tmp_path / "my-cat-sliding.gif").is_file(), r.stderr  # named for the photo


@pytest.mark.parametrize(
    "case, make, message",
    [
        ("missing", None, "not found"),
        ("text", lambda p: p.write_text("hello"), "not an image Pillow can read"),
        ("huge canvas", lambda p: Image.new("RGB", (5000, 5000)).save(p, format="PNG"), "over the cap"),
        ("all transparent", lambda p: Image.new("RGBA", (30, 30)).save(p, format="PNG"), "no subject to cut out"),
        ("strength", lambda p: Image.fromarray(disc(40)).save(p, format="PNG"), "--strength is 1.5"),
    ],
)
def test_cli_bad_photo_exits_2_in_one_line_before_loading(case, make, message, small_meme_dir, tmp_path, run_meme):
    photo = tmp_path / "photo.png"
    if make:
        make(photo)
    more = ["--strength", "1.5"] if case == "strength" else []
    r = run_meme("gen", "--image", photo, "--meme", small_meme_dir, "-o", tmp_path / "out.gif", *more)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.gif").exists()
