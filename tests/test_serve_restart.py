"""Issue 30, 4: a training job answered 202 survives any stop of the server. A real `meme serve` process is
stopped with SIGINT mid-job (it drains: checkpoint, exit 0), restarted (the job resumes from its checkpoint),
killed with SIGKILL (no chance to drain), and restarted again: the job finishes and its meme appears."""

import json
import os
import signal
import time

import httpx

from memestar.bench.load import ServerProcess

STEPS = 400  # random-tiny at 32 px, 4 frames: about 45 steps a second on the CI machine's two cores


def serving(memes) -> ServerProcess:
    """`meme serve` in its own process (a free loopback port each start), ready when entered, ended on exit."""
    return ServerProcess(memes, "cpu", train_base="random-tiny")


def wait_for(client, url, until, seconds=120) -> dict:
    deadline = time.monotonic() + seconds
    while not until(state := client.get(url).json()):
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


def test_jobs_survive_sigint_and_sigkill(tmp_path, slide_gif):
    memes = tmp_path / "memes"
    memes.mkdir()
    (memes / ".jobs" / "left-over").mkdir(parents=True)  # a folder with no journal: removed on start
    form = {
        "prompt": "a red square sliding",
        "id": "kept",
        "steps": str(STEPS),
        "frames": "4",
        "size": "32",
        "inversion_steps": "2",
    }

    with serving(memes) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert not (memes / ".jobs" / "left-over").exists()
            job = client.post("/memes", data=form, files={"clip": ("slide.gif", slide_gif.read_bytes(), "image/gif")})
            assert job.status_code == 202, job.text
            url = job.json()["url"]
            wait_for(client, url, lambda s: s["progress"]["step"] >= 60)
        server.process.send_signal(signal.SIGINT)
        _, err = server.process.communicate(timeout=120)
    assert server.process.returncode == 0, err
    assert "terminate called" not in err and "Traceback" not in err, err
    folder = memes / ".jobs" / url.rsplit("/", 1)[1]
    journal = json.loads((folder / "job.json").read_text())
    assert journal["state"] == "queued" and 60 <= journal["step"] < STEPS, journal
    assert (folder / "meme" / "checkpoint.safetensors").is_file()  # drained: checkpointed at the step it stopped

    with serving(memes) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            seen = []  # the steps reported: a job started over would report 1, 2, ... again
            wait_for(client, url, lambda s: seen.append(s["progress"]["step"]) or s["progress"]["step"] >= 160)
            assert min(seen) >= journal["step"], seen  # resumed from the checkpoint
        server.process.send_signal(signal.SIGKILL)  # past the checkpoint at 150: no chance to drain
        server.process.communicate(timeout=60)

    with serving(memes) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            seen = []
            done = wait_for(
                client, url, lambda s: seen.append(s["progress"]["step"]) or s["state"] in ("done", "failed")
            )
            assert min(seen) >= 150, seen  # from the checkpoint at step 150, written before the kill
            assert done["state"] == "done" and done["progress"]["step"] == STEPS, done
            assert "kept" in [m["id"] for m in client.get("/memes").json()["memes"]]
            gen = client.post("/memes/kept/gen", json={"prompt": "a red square sliding", "steps": 2})
            assert gen.status_code == 200, gen.text
            assert os.listdir(folder) == ["job.json"]  # the clip and the unfinished meme are gone; the journal stays
        server.process.send_signal(signal.SIGTERM)
        server.process.communicate(timeout=120)
    assert server.process.returncode == 0

    with serving(memes) as server:  # a finished job still answers after a restart
        assert httpx.get(server.url + url).json()["state"] == "done"
