"""Learned subjects (`meme subject learn`, issue 33): a subject learned from a few photos on the emoji base is a word
of its own that memes of that base draw; its folder round-trips, is checked on every read, and is refused on another
base; bad photos and names are one line before any model loads; the server lists subjects and generates with one."""

import json
import shutil

import numpy as np
import pytest
from live_server import running, wait_ready
from PIL import Image

from memestar.errors import MemeError
from memestar.formats.subject_file import EMBEDDING, read_subject
from memestar.runtime import Meme
from memestar.serve.options import ServeOptions
from memestar.tiny.emoji_world import atlas, random_sprite, render
from memestar.tiny.worlds import WORLDS
from memestar.train.options import SubjectOptions
from memestar.train.subject import learn_subject

WORLD = WORLDS["emoji"]


@pytest.fixture(scope="module")
def koala_photos(tmp_path_factory):
    """Two photos of the koala, never named: its cut-out (a transparent PNG) and a render on a background (JPEG)."""
    folder = tmp_path_factory.mktemp("photos")
    atlas()["koala"].save(folder / "cut-out.png")
    Image.fromarray(render(random_sprite(np.random.default_rng(3), "koala"))).save(folder / "at-the-zoo.jpg")
    return folder


@pytest.fixture(scope="module")
def subjects(tmp_path_factory, koala_photos, emoji_popping_meme):
    """The koala learned on the emoji base as my-koala (300 steps: the default), in a subjects folder."""
    root = tmp_path_factory.mktemp("subjects")
    learn_subject(SubjectOptions(photos=koala_photos, name="my-koala", base="emoji", out=root / "my-koala", quiet=True))
    return root


def test_a_learned_subject_round_trips_and_memes_of_its_base_draw_it(subjects, emoji_popping_meme, tmp_path):
    manifest, embedding = read_subject(subjects / "my-koala")
    assert manifest.token == "<my-koala>" and manifest.base.reference == "emoji" and manifest.training.photos == 2
    assert embedding.shape == (manifest.width,) and manifest.training.final_loss < manifest.training.first_loss

    meme = Meme.load(emoji_popping_meme)
    prompt = meme.prompt_with_learned(subjects / "my-koala")
    assert prompt == "a <my-koala> popping"
    g = meme.generate(prompt)
    reads = [r.subject[0] if r.subject else None for r in WORLD.read_frames(g.frames)]
    # the word starts as "face" (the base draws a grinning face for it); learned, the koala: 0.94 of the frames
    assert np.mean([r == "koala" for r in reads]) >= 0.8, reads

    changed = tmp_path / "my-koala"
    shutil.copytree(subjects / "my-koala", changed)
    data = bytearray((changed / EMBEDDING).read_bytes())
    data[-1] ^= 0xFF
    (changed / EMBEDDING).write_bytes(bytes(data))
    with pytest.raises(MemeError, match="changed since subject.json"):
        meme.prompt_with_learned(changed)


def test_cli_gen_names_a_learned_subject_and_another_bases_is_refused(
    subjects, emoji_popping_meme, small_meme_dir, tmp_path, run_meme
):
    r = run_meme(
        "gen",
        "--subject",
        "my-koala",
        "--subjects",
        subjects,
        "-m",
        emoji_popping_meme,
        "--steps",
        "4",
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["prompt"] == "a <my-koala> popping" and info["output"] == "my-koala-popping.gif"
    r = run_meme("gen", "--subject", "my-koala", "--subjects", subjects, "-m", small_meme_dir, cwd=tmp_path)
    assert r.returncode == 2 and "was learned on base emoji" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_meme(
        "gen",
        "--subject",
        "a-red-ball",
        "--subjects",
        subjects,
        "-m",
        small_meme_dir,
        "--steps",
        "2",
        "-q",
        cwd=tmp_path,
    )
    assert r.returncode == 0 and (tmp_path / "a-red-ball-sliding.gif").is_file()  # not learned: plain words


@pytest.mark.parametrize(
    "case, message",
    [
        ("no photos", "holds 0 photos"),
        ("five photos", "holds 5 photos"),
        ("bad name", "subject name 'My Cat'"),
        ("not a photo", "not a photo Pillow can read"),
        ("exists", "already holds a subject"),
    ],
)
def test_cli_learn_refuses_bad_input_in_one_line(case, message, subjects, koala_photos, tmp_path, run_meme):
    photos, name, out = tmp_path / "photos", "my-cat", tmp_path / "out"
    photos.mkdir()
    if case == "five photos":
        for i in range(5):
            shutil.copy(koala_photos / "cut-out.png", photos / f"{i}.png")
    elif case == "not a photo":
        (photos / "cat.png").write_text("hello")
    elif case == "exists":
        photos, out = koala_photos, subjects / "my-koala"
    elif case == "bad name":
        photos, name = koala_photos, "My Cat"
    r = run_meme("subject", "learn", photos, "--name", name, "--base", "emoji", "--out", out, "--steps", "2")
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    if case == "exists":
        assert read_subject(out)[0].name == "my-koala"  # the old subject is kept


def test_the_server_lists_subjects_and_generates_with_one(subjects, emoji_popping_meme, tmp_path):
    memes = tmp_path / "memes"
    memes.mkdir()
    shutil.copytree(emoji_popping_meme, memes / "popping")
    with running(ServeOptions(memes=memes, subjects=subjects)) as client:
        wait_ready(client)
        listed = client.get("/subjects").json()["subjects"]
        assert [(s["name"], s["token"], s["base"]["reference"]) for s in listed] == [
            ("my-koala", "<my-koala>", "emoji")
        ]
        r = client.post("/memes/popping/gen", json={"subject": "my-koala", "steps": 4})
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
        styled = client.post(
            "/memes/popping/gen", json={"subject": "my-koala", "steps": 2, "style": "sticker", "variants": 2}
        )
        assert styled.json()["prompt"].startswith("a <my-koala> popping")
