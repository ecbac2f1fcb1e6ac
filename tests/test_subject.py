"""Learned subjects (`meme subject learn`, issue 33): a subject learned from a few photos on the emoji base is a word
of its own that memes of that base draw; its folder round-trips, is checked on every read, and is refused on another
base; bad photos and names are one line before any model loads; the server lists subjects, generates with one, and
learns uploaded ones as jobs that survive a restart."""

import json
import os
import shutil
import time

import numpy as np
import pytest
import torch
from live_server import running, wait_ready
from PIL import Image

from memestar.checks import MAX_STILL_BYTES
from memestar.errors import MemeError
from memestar.formats.subject_file import EMBEDDING, read_subject
from memestar.runtime import Meme
from memestar.serve.jobs import SubjectJob, TrainingJobs
from memestar.serve.options import ServeOptions
from memestar.serve.worker import DeviceGate
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


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
    return body["error"]


def photo_files(folder, *names) -> list:
    return [("photos", (name, (folder / name).read_bytes(), "application/octet-stream")) for name in names]


def wait_for_job(client, url, seconds=120) -> dict:
    deadline = time.monotonic() + seconds
    while (state := client.get(url).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, state
        time.sleep(0.1)
    return state


def test_the_server_learns_an_uploaded_subject_as_a_job_as_the_cli_does(koala_photos, emoji_popping_meme, tmp_path):
    memes, subjects = tmp_path / "memes", tmp_path / "subjects"
    memes.mkdir()
    subjects.mkdir()
    shutil.copytree(emoji_popping_meme, memes / "popping")
    koala = photo_files(koala_photos, "at-the-zoo.jpg", "cut-out.png")
    form = {"name": "my-koala", "meme": "popping", "steps": "40", "seed": "3"}
    with running(ServeOptions(memes=memes, subjects=subjects, train_base="no-such-base")) as client:
        wait_ready(client)
        r = client.post("/subjects", data=form, files=koala)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["subject"] == "my-koala" and job["url"] == f"/jobs/{job['id']}"
        assert "being learned" in one_line_error(client.post("/subjects", data=form, files=koala), 409)
        state = wait_for_job(client, job["url"])
        assert state["state"] == "done" and state["progress"]["step"] == 40, state
        assert [s["name"] for s in client.get("/subjects").json()["subjects"]] == ["my-koala"]
        r = client.post("/memes/popping/gen", json={"subject": "my-koala", "steps": 2})
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
        assert "exists" in one_line_error(client.post("/subjects", data=form, files=koala), 409)
        assert os.listdir(subjects / ".jobs" / job["id"]) == ["job.json"]  # the photos are gone, the journal stays

        # on the meme's base (the server's training base does not exist), the very subject the CLI learns
        learn_subject(
            SubjectOptions(photos=koala_photos, name="my-koala", base="emoji", steps=40, seed=3, out=tmp_path / "cli")
        )
        served, cli = read_subject(subjects / "my-koala"), read_subject(tmp_path / "cli")
        assert served[0].base == cli[0].base and served[0].training.photos == 2
        assert torch.equal(served[1], cli[1])


def test_subject_uploads_are_checked_in_one_line(koala_photos, emoji_popping_meme, tmp_path):
    memes, subjects = tmp_path / "memes", tmp_path / "subjects"
    memes.mkdir()
    subjects.mkdir()
    (subjects / "taken").mkdir()
    shutil.copytree(emoji_popping_meme, memes / "popping")
    form = {"name": "my-koala", "meme": "popping", "steps": "2"}
    koala = photo_files(koala_photos, "cut-out.png")
    with running(ServeOptions(memes=memes, subjects=subjects)) as client:
        assert "1 to 4" in one_line_error(client.post("/subjects", data=form, files=koala * 5), 422)
        assert "photos" in one_line_error(client.post("/subjects", data=form), 422)
        assert "must end in" in one_line_error(
            client.post("/subjects", data=form, files=[("photos", ("cat.exe", b"MZ", "application/x-dosexec"))]), 415
        )
        not_a_photo = [("photos", ("cat.png", b"hello", "image/png"))]
        assert "cat.png" in one_line_error(client.post("/subjects", data=form, files=not_a_photo), 422)
        big = [("photos", ("big.png", b"\0" * (MAX_STILL_BYTES + 1), "image/png"))]
        assert "MiB" in one_line_error(client.post("/subjects", data=form, files=big), 413)
        bad_name = client.post("/subjects", data={**form, "name": "../x"}, files=koala)
        assert "subject name" in one_line_error(bad_name, 400)
        assert "meme id" in one_line_error(client.post("/subjects", data={**form, "meme": "../x"}, files=koala), 400)
        assert one_line_error(client.post("/subjects", data={**form, "meme": "nope"}, files=koala), 404)
        assert "steps" in one_line_error(client.post("/subjects", data={**form, "steps": "0"}, files=koala), 422)
        assert "exists" in one_line_error(client.post("/subjects", data={**form, "name": "taken"}, files=koala), 409)
        assert os.listdir(subjects / ".jobs") == []  # nothing refused left a folder
        assert client.get("/subjects").json() == {"subjects": [], "uploads": True}
    with running(ServeOptions(memes=memes)) as client:
        assert "--subjects" in one_line_error(client.post("/subjects", data=form, files=koala), 409)


def test_a_stopped_subject_job_starts_again_on_the_next_start_and_finishes(koala_photos, tmp_path):
    memes, subjects = tmp_path / "memes", tmp_path / "subjects"
    memes.mkdir()
    subjects.mkdir()
    jobs = TrainingJobs(memes, DeviceGate(), subjects_dir=subjects)
    folder = jobs.folder("subject", jobs.new_id())
    shutil.copytree(koala_photos, folder / "photos")
    options = SubjectOptions(photos=folder / "photos", name="my-koala", base="emoji", steps=120, quiet=True)
    job = jobs.submit(SubjectJob(id=folder.name, options=options))
    deadline = time.monotonic() + 120
    while job.step < 3:
        assert time.monotonic() < deadline and job.state in ("queued", "running"), job
        time.sleep(0.02)
    jobs.stop()
    journal = json.loads((folder / "job.json").read_text())
    assert journal["state"] == "queued" and journal["step"] == 0, journal  # it starts again: seconds, not a checkpoint
    assert not (subjects / "my-koala").exists() and (folder / "photos").is_dir()

    again = TrainingJobs(memes, DeviceGate(), subjects_dir=subjects)
    try:
        deadline = time.monotonic() + 120
        while (resumed := again.jobs[folder.name]).state in ("queued", "running"):
            assert time.monotonic() < deadline, resumed
            time.sleep(0.05)
        assert resumed.state == "done" and resumed.step == 120, resumed
        assert read_subject(subjects / "my-koala")[0].training.steps == 120
        assert os.listdir(folder) == ["job.json"]
    finally:
        again.stop()
