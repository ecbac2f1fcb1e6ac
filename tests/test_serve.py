"""`meme serve` through a real uvicorn server on a loopback port: every endpoint, bad input for each answered with
the right 4xx and a one-line JSON error, batching, back-pressure (503), deadlines (504), dropped requests of
clients that left, auth, and training jobs next to generation."""

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import numpy as np
import pytest
from live_server import running, wait_ready
from PIL import Image, ImageSequence

from memestar.serve.options import ServeOptions

TOKEN = "a-test-token-of-32-characters-00"
QUICK = {"prompt": "a blue circle sliding", "steps": 2}


def gif_frames(data: bytes) -> np.ndarray:
    return np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))])


def one_line_error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and body["error"] and "\n" not in body["error"], body
    return body["error"]


@pytest.fixture(scope="module")
def memes_dir(tmp_path_factory, small_meme_dir, meme_variant):
    root = tmp_path_factory.mktemp("served")
    meme_variant(small_meme_dir, root / "slide", 1)
    meme_variant(small_meme_dir, root / "slide-two", 2)
    (root / "not-a-meme").mkdir()
    return root


@pytest.fixture(scope="module")
def server(memes_dir):
    with running(ServeOptions(memes=memes_dir, window_ms=50)) as client:
        wait_ready(client)
        yield client


def test_probes_metrics_docs_and_listing(server):
    assert server.get("/healthz").json() == {"status": "ok"}
    ready = server.get("/readyz").json()
    assert ready["ready"] and ready["bases"] == 1
    assert "/memes/{mid}/gen" in server.get("/openapi.json").json()["paths"]
    assert server.get("/docs").status_code == 200
    listed = server.get("/memes").json()["memes"]
    assert [m["id"] for m in listed] == ["slide", "slide-two"]  # not-a-meme has no meme.json
    assert {"prompt", "frames", "size", "base"} <= set(listed[0]) and listed[0]["frames"] == 8
    assert listed[0]["template"] == "{subject} sliding"  # where a gen body's subject goes (guessed: no braces)
    assert listed[0]["follows"] is True  # a square on grey: its subject track is there to follow
    one = server.get("/memes/slide").json()
    assert one["id"] == "slide" and one["training"]["steps"] == 3
    assert server.get("/memes/slide/preview.gif").headers["content-type"] == "image/gif"
    metrics = server.get("/metrics").text
    for name in (
        "memestar_request_seconds",
        "memestar_stage_seconds",
        "memestar_queue_depth",
        "memestar_batch_size",
        "memestar_memes_loaded",
        "memestar_device_memory_bytes",
    ):
        assert name in metrics


def test_gen_returns_the_clip_and_variants_as_json(server):
    r = server.post("/memes/slide/gen", json={**QUICK, "seed": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
    frames = gif_frames(r.content)
    assert frames.shape == (8, 64, 64, 3)
    unfollowed = server.post("/memes/slide/gen", json={**QUICK, "seed": 3, "follow": "off"})
    assert not np.array_equal(gif_frames(unfollowed.content), frames)  # the meme's subject track, followed by default
    webp = server.post("/memes/slide/gen", json={**QUICK, "format": "webp"})
    assert webp.headers["content-type"] == "image/webp" and webp.content[8:12] == b"WEBP"
    r = server.post("/memes/slide/gen", json={**QUICK, "variants": 3, "variation": 0.5, "seed": 10})
    body = r.json()
    assert [c["seed"] for c in body["clips"]] == [10, 11, 12]
    clips = [gif_frames(base64.b64decode(c["data"])) for c in body["clips"]]
    assert np.abs(clips[0].astype(int) - clips[1]).mean() > 1  # options to pick from, not one clip thrice
    sticker = server.post("/memes/slide/gen", json={**QUICK, "preset": "telegram"})
    assert sticker.headers["content-type"] == "video/webm" and sticker.content[:4] == b"\x1a\x45\xdf\xa3"
    assert "telegram: 512x512" in sticker.headers["x-meme-note"]
    r = server.post("/memes/slide/gen", json={"subject": "a green star", "steps": 2, "style": "sticker", "variants": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["prompt"].startswith("a green star sliding, die-cut sticker")  # the meme's action, the style's words
    assert [c["media_type"] for c in body["clips"]] == ["video/webm"] * 2  # the style's preset: Telegram
    styled = server.post(
        "/memes/slide/gen", json={**QUICK, "format": "webp", "sticker": True, "top": "hi", "loop": "pingpong"}
    )
    with Image.open(io.BytesIO(styled.content)) as image:
        assert image.mode == "RGBA" and image.n_frames == 14
    other = server.post("/memes/slide-two/gen", json=QUICK)  # a second meme: its adapter swapped in
    assert not np.array_equal(
        gif_frames(other.content), gif_frames(server.post("/memes/slide/gen", json=QUICK).content)
    )


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"steps": 2}, 422, "prompt"),
        ({**QUICK, "prompt": ""}, 422, "prompt"),
        ({**QUICK, "prompt": "   "}, 422, "prompt is empty"),
        ({**QUICK, "prompt": "x" * 10_000}, 422, "prompt"),
        ({**QUICK, "steps": 0}, 422, "steps"),
        ({**QUICK, "steps": "5"}, 422, "steps"),
        ({**QUICK, "guidance": 0.5}, 422, "guidance"),
        ({**QUICK, "format": "bmp"}, 422, "format"),
        ({**QUICK, "preset": "myspace"}, 422, "preset"),
        ({**QUICK, "sticker": True, "format": "mp4"}, 422, "no transparency"),
        ({**QUICK, "top": "y" * 150}, 422, "does not fit a 64x64 canvas"),
        ({**QUICK, "loop": "boomerang"}, 422, "loop"),
        ({**QUICK, "subject": "a cat"}, 422, "give a prompt or a subject"),
        ({**QUICK, "style": "vapor"}, 422, "style"),
        ({**QUICK, "preset": "slack", "format": "gif"}, 422, "fixes the format"),
        ({**QUICK, "variants": 9}, 422, "variants"),
        ({**QUICK, "variation": 2}, 422, "variation"),
        ({**QUICK, "seed": -1}, 422, "seed"),
        ({**QUICK, "follow": "maybe"}, 422, "follow"),
        ({**QUICK, "colour": "red"}, 422, "colour"),
        ([1, 2], 422, "body"),
        ({**QUICK, "prompt": "a cat \udcff"}, 422, "prompt: Input should be a valid string"),  # JSON's "\udcff"
        ({**QUICK, "negative": "dogs \ud800"}, 422, "negative: Input should be a valid string"),
        ({**QUICK, "top": "hi \udcff"}, 422, "top: Input should be a valid string"),
        ({**QUICK, "top": "你好"}, 422, "which no bundled font draws"),
    ],
)
def test_bad_gen_requests_get_one_line_json_errors(server, body, status, words):
    sent = json.dumps(body)  # ASCII, so a lone surrogate travels as JSON's own escape, as a hostile client sends it
    r = server.post("/memes/slide/gen", content=sent, headers={"content-type": "application/json"})
    assert words in one_line_error(r, status)


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_gen_with_a_photo_animates_its_subject_and_bad_photos_are_one_line(server):
    photo = Image.new("RGBA", (40, 40))
    photo.paste((230, 60, 40, 255), (10, 10, 30, 30))  # a red square, cut out

    def send(data: bytes, settings: dict | str | None = None, name="my cat.png", **kw):
        fields = (
            {} if settings is None else {"settings": settings if isinstance(settings, str) else json.dumps(settings)}
        )
        return server.post("/memes/slide/gen", files={"image": (name, data, "image/png")}, data=fields, **kw)

    r = send(png_bytes(photo), {"steps": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
    assert gif_frames(r.content).shape == (8, 64, 64, 3)
    r = send(png_bytes(photo), {"steps": 2, "variants": 2, "strength": 0.5, "format": "webp"})
    body = r.json()
    assert body["prompt"] == "sliding" and [c["media_type"] for c in body["clips"]] == ["image/webp"] * 2

    assert "not an image Pillow can read" in one_line_error(send(b"hello"), 422)
    assert "passwd is not an image" in one_line_error(send(b"hello", name="../../etc/passwd"), 422)  # its last part
    assert "over the cap" in one_line_error(send(png_bytes(Image.new("RGB", (5000, 5000)))), 422)
    assert "no subject to cut out" in one_line_error(send(png_bytes(Image.new("RGBA", (30, 30)))), 422)
    assert "MiB" in one_line_error(send(bytes(17 * 2**20)), 413)
    assert "strength" in one_line_error(send(png_bytes(photo), {"strength": 2}), 422)
    assert "colour" in one_line_error(send(png_bytes(photo), {"colour": "red"}), 422)
    assert "not valid JSON" in one_line_error(send(png_bytes(photo), "{not json"), 422)
    no_photo = server.post("/memes/slide/gen", files={"settings": (None, json.dumps(QUICK))})
    assert "multipart file field 'image'" in one_line_error(no_photo, 422)
    two = server.post("/memes/slide/gen", files=[("image", ("a.png", b"x")), ("image", ("b.png", b"y"))])
    assert one_line_error(two, 400)
    text = server.post("/memes/slide/gen", content=b"hi", headers={"content-type": "text/plain"})
    assert "multipart/form-data" in one_line_error(text, 415)
    assert server.post("/memes/slide/gen", json=QUICK).status_code == 200  # and JSON as before


def test_bad_ids_paths_and_bodies(server):
    assert "no meme" in one_line_error(server.post("/memes/nope/gen", json=QUICK), 404)
    assert "meme id" in one_line_error(server.post("/memes/%2E%2E/gen", json=QUICK), 400)
    assert "meme id" in one_line_error(server.get("/memes/.hidden"), 400)
    assert one_line_error(server.get("/memes/..%2F..%2Fetc"), 404)
    assert one_line_error(
        server.post("/memes/slide/gen", content=b"{not json", headers={"content-type": "application/json"}), 422
    )
    assert "KiB" in one_line_error(server.post("/memes/slide/gen", json={**QUICK, "negative": "x" * 70_000}), 413)
    assert "no job" in one_line_error(server.get("/jobs/%2E%2E"), 404)
    assert one_line_error(server.get("/jobs/../../etc"), 404)  # normalised by the client: no such route
    assert one_line_error(server.get("/jobs/" + "0" * 32), 404)


def test_token_is_required_and_compared(memes_dir):
    with running(ServeOptions(memes=memes_dir, token=TOKEN)) as client:
        assert client.get("/healthz").status_code == 200  # probes stay open
        assert "token" in one_line_error(client.get("/memes"), 401)
        assert one_line_error(client.get("/memes", headers={"Authorization": "Bearer wrong"}), 401)
        assert one_line_error(client.get("/metrics", headers={"Authorization": TOKEN}), 401)  # no scheme
        assert client.get("/memes", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        page = client.get("/")  # the playground holds no data: it asks for the token itself
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/playground/playground.js").headers["content-type"].startswith("text/javascript")
        assert "playground file" in one_line_error(client.get("/playground/app.py"), 404)
        assert one_line_error(client.get("/playground/..%2fapp.py"), 404)


def test_concurrent_requests_run_as_batches_equal_to_alone(memes_dir):
    with running(ServeOptions(memes=memes_dir, window_ms=300)) as client:
        wait_ready(client)
        bodies = [{**QUICK, "seed": s, "variation": 0.3, "guidance": g} for s, g in ((1, 5.0), (2, 6.0), (3, 7.0))]
        with ThreadPoolExecutor(3) as pool:
            together = list(pool.map(lambda b: client.post("/memes/slide/gen", json=b), bodies))
        assert [r.status_code for r in together] == [200] * 3
        assert max(int(r.headers["x-batch-size"]) for r in together) >= 2
        clips = [gif_frames(r.content).astype(int) for r in together]
        for i, body in enumerate(bodies):
            alone = client.post("/memes/slide/gen", json=body)
            assert alone.headers["x-batch-size"] == "1"
            frames = gif_frames(alone.content).astype(int)
            own = np.abs(frames - clips[i]).mean()
            others = min(np.abs(frames - clips[k]).mean() for k in range(3) if k != i)
            # each client gets its own clip: its latents equal its clip alone (test_store.py), but under the full
            # suite's load the GIF has differed by 15 levels at a pixel (not reproduced alone: a rounding difference
            # moving the palette, most likely); another request's clip differs by about 33 levels a pixel
            assert own < 0.2 * others, (own, others)
        assert "memestar_batch_size_bucket" in client.get("/metrics").text


def test_full_queue_answers_503_at_once_and_deadlines_504(memes_dir):
    slow = {**QUICK, "steps": 60}
    with running(ServeOptions(memes=memes_dir, max_queue=1, window_ms=0)) as client:
        wait_ready(client)
        with ThreadPoolExecutor(6) as pool:
            started = time.monotonic()
            futures = [pool.submit(client.post, "/memes/slide/gen", json={**slow, "seed": i}) for i in range(6)]
            refused = [f.result() for f in futures if f.result().status_code == 503]
            assert refused and all(r.headers["retry-after"] == "1" for r in refused)
            assert "queue is full" in one_line_error(refused[0], 503)
        assert all(f.result().status_code in (200, 503) for f in futures)
        assert time.monotonic() - started < 120
    with running(ServeOptions(memes=memes_dir, deadline_s=0.2)) as client:
        wait_ready(client)
        assert "deadline" in one_line_error(client.post("/memes/slide/gen", json={**slow, "steps": 200}), 504)


def test_a_client_that_leaves_has_its_queued_work_dropped(memes_dir):
    with running(ServeOptions(memes=memes_dir, window_ms=0)) as client:
        wait_ready(client)
        worker = client.app.state.worker
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(client.post, "/memes/slide/gen", json={**QUICK, "steps": 80})
            time.sleep(0.3)
            with pytest.raises(httpx.TimeoutException):
                client.post("/memes/slide/gen", json=QUICK, timeout=0.3)  # queued behind the busy one, then gone
            assert busy.result().status_code == 200
        deadline = time.monotonic() + 10
        while worker.dropped < 1:
            assert time.monotonic() < deadline, "the abandoned request was run"
            time.sleep(0.05)


def test_training_job_runs_beside_generation_and_its_meme_appears(memes_dir, slide_gif, tmp_path):
    options = ServeOptions(memes=memes_dir, train_base="random-tiny")
    with running(options) as client:
        wait_ready(client)
        form = {
            "prompt": "a red square sliding",
            "id": "trained",
            "steps": "30",
            "frames": "8",
            "size": "64",
            "lr": "0.001",
            "inversion_steps": "2",
        }
        r = client.post("/memes", data=form, files={"clip": ("slide.gif", slide_gif.read_bytes(), "image/gif")})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["state"] in ("queued", "running") and job["url"] == f"/jobs/{job['id']}"
        served_during = 0
        deadline = time.monotonic() + 240
        while (state := client.get(job["url"]).json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, state
            if state["state"] == "running" and 0 < state["progress"]["step"] < 30:
                assert client.post("/memes/slide/gen", json=QUICK).status_code == 200
                served_during += 1
        assert state["state"] == "done" and state["progress"]["step"] == 30, state
        assert served_during >= 1  # generation was answered while the job trained
        assert "trained" in [m["id"] for m in client.get("/memes").json()["memes"]]
        assert client.post("/memes/trained/gen", json=QUICK).status_code == 200
        assert "exists" in one_line_error(
            client.post("/memes", data=form, files={"clip": ("slide.gif", slide_gif.read_bytes(), "image/gif")}), 409
        )
        kept = [p.name for p in (memes_dir / ".jobs" / job["id"]).iterdir()]
        assert kept == ["job.json"]  # the clip and the working copy are gone; the journal answers after a restart


def test_training_uploads_are_checked_and_failed_jobs_say_why(memes_dir, slide_gif):
    form = {"prompt": "a red square sliding", "steps": "2", "frames": "8", "size": "64"}
    gif = {"clip": ("slide.gif", slide_gif.read_bytes(), "image/gif")}
    with running(ServeOptions(memes=memes_dir, max_upload_mb=0.05, train_base="no-such-base")) as client:
        assert "MiB" in one_line_error(
            client.post("/memes", data=form, files={"clip": ("big.mp4", b"\0" * 100_000, "video/mp4")}), 413
        )
        assert one_line_error(
            client.post("/memes", data=form, files={"clip": ("clip.mp4", b"this is not a video", "video/mp4")}), 422
        )
        assert "must end" in one_line_error(
            client.post("/memes", data=form, files={"clip": ("clip.exe", b"MZ", "application/octet-stream")}), 415
        )
        assert "steps" in one_line_error(client.post("/memes", data={**form, "steps": "0"}, files=gif), 422)
        assert "prompt" in one_line_error(client.post("/memes", data={"steps": "2"}, files=gif), 422)
        assert "meme id" in one_line_error(client.post("/memes", data={**form, "id": "../x"}, files=gif), 400)
        job = client.post("/memes", data={**form, "id": "doomed"}, files=gif).json()
        deadline = time.monotonic() + 60
        while (state := client.get(f"/jobs/{job['id']}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert state["state"] == "failed" and "no-such-base" in state["error"] and "\n" not in state["error"]
        assert "doomed" not in [m["id"] for m in client.get("/memes").json()["memes"]]
        assert client.post("/memes/slide/gen", json=QUICK).status_code == 200  # the server lives on


def test_options_are_checked(tmp_path):
    from memestar.errors import MemeError

    with pytest.raises(MemeError, match="not found"):
        ServeOptions(memes=tmp_path / "missing").check()
    with pytest.raises(MemeError, match="shorter than 16"):
        ServeOptions(memes=tmp_path, token="short").check()
    with pytest.raises(MemeError, match="--max-queue"):
        replace(ServeOptions(memes=tmp_path), max_queue=0).check()


# issue 30: ids matched whole, one upload per id, auth before the body, no server paths in answers, bombs as 422
def test_ids_are_matched_whole(server, memes_dir, slide_gif):
    for bad in ("nl%0A", "slide%0A", "a%00", "x" * 129, "-lead"):
        assert "meme id" in one_line_error(server.get(f"/memes/{bad}"), 400)
    form = {"prompt": "a red square sliding", "id": "nl\n"}
    assert "meme id" in one_line_error(
        server.post("/memes", data=form, files={"clip": ("s.gif", slide_gif.read_bytes(), "image/gif")}), 400
    )
    from memestar.serve.app import list_memes, slug_id

    (memes_dir / "nl\n").mkdir(exist_ok=True)
    (memes_dir / "nl\n" / "meme.json").write_text("{}")
    try:
        assert all("\n" not in mid for mid, _ in list_memes(memes_dir))
        assert "nl\n" not in [m["id"] for m in server.get("/memes").json()["memes"]]
    finally:
        (memes_dir / "nl\n" / "meme.json").unlink()
        (memes_dir / "nl\n").rmdir()
    assert slug_id("running cat\n") == "running-cat"


def test_concurrent_uploads_of_one_id_get_one_202_and_409s(memes_dir, slide_gif, monkeypatch):
    import threading

    import memestar.serve.jobs as jobs_module

    release = threading.Event()
    monkeypatch.setattr(jobs_module, "train_meme", lambda *a, **k: release.wait(30) and None)  # the job holds
    form = {
        "prompt": "a red square sliding",
        "id": "raced",
        "steps": "1",
        "frames": "4",
        "size": "32",
        "inversion_steps": "1",
    }
    with running(ServeOptions(memes=memes_dir, train_base="no-such-base")) as client:

        def upload(_):
            return client.post("/memes", data=form, files={"clip": ("s.gif", slide_gif.read_bytes(), "image/gif")})

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(upload, range(4)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [202, 409, 409, 409], [r.text for r in answers]
        for r in answers:
            if r.status_code == 409:
                assert "'raced' exists or is being trained" in one_line_error(r, 409)
        release.set()


def raw_request(port: int, head: str) -> bytes:
    """Sends only `head` (the request line and headers, no body) and returns what the server answers."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def test_a_stranger_is_refused_before_the_body_is_read(memes_dir):
    """An unauthenticated upload declaring 4 MB gets its 401 as soon as its headers arrive: the test never sends
    the body, and the answer comes anyway (under the old dependency it waited for the body)."""
    with running(ServeOptions(memes=memes_dir, token=TOKEN)) as client:
        port = int(str(client.base_url).rsplit(":", 1)[1].strip("/"))
        answer = raw_request(
            port,
            "POST /memes HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n",
        )
        assert answer.startswith(b"HTTP/1.1 401") and b'"error":"missing or wrong token' in answer, answer[:300]
        assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200


def test_upload_bombs_are_422_naming_the_clients_file_and_keep_alive_holds(memes_dir, hostile_media):
    """The review's 85-byte bomb answered 500 and dropped the connection; every hostile file is now a 422 whose
    one line names the client's file name, never the server's folders, on a connection that stays open."""
    form = {"prompt": "a red square sliding", "steps": "1", "frames": "4", "size": "32"}
    jobs_before = set((memes_dir / ".jobs").iterdir()) if (memes_dir / ".jobs").exists() else set()
    with running(ServeOptions(memes=memes_dir, train_base="no-such-base")) as client:
        for name in (
            "bomb-30000.gif",
            "bomb-9000x20.gif",
            "timeline.gif",
            "timeline.webp",
            "wide-frame.webp",
            "half.webm",
            "garbage.webm",
        ):
            sent = f"my {name}"
            r = client.post("/memes", data=form, files={"clip": (sent, hostile_media[name].read_bytes(), "x/y")})
            message = one_line_error(r, 422)
            assert sent in message and ".jobs" not in message and str(memes_dir) not in message, message
            assert r.headers.get("connection") != "close"
        assert client.get("/healthz").status_code == 200
        assert set((memes_dir / ".jobs").iterdir()) == jobs_before  # nothing of the refused uploads is left
