"""The Ray Serve deployment end to end on a local Ray instance on the CPU: two replicas, several memes, requests
routed by meme id to replicas that hold it, batches formed, errors as one-line JSON."""

import os
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

ray = pytest.importorskip("ray", reason="the Ray test needs the ray extra: pip install -e '.[ray]'")
from ray import serve  # noqa: E402

from memestar.bench.load import free_port  # noqa: E402
from memestar.serve.options import ServeOptions  # noqa: E402
from memestar.serve.ray_app import app_builder, build  # noqa: E402

QUICK = {"prompt": "a blue circle sliding", "steps": 2}
MEMES = ("m0", "m1", "m2", "m3")


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory, small_meme_dir, meme_variant):
    root = tmp_path_factory.mktemp("ray-memes")
    for i, name in enumerate(MEMES):
        meme_variant(small_meme_dir, root / name, i)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster (Ray 2.60 turns auth on)
    port = free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build(ServeOptions(memes=root), replicas=2), name="memestar", route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            yield client
    finally:
        serve.shutdown()
        ray.shutdown()


def test_requests_go_to_replicas_that_hold_their_meme(ray_server):
    assert ray_server.get("/healthz").json() == {"status": "ok"}
    assert [m["id"] for m in ray_server.get("/memes").json()["memes"]] == list(MEMES)
    replicas = set()
    for name in MEMES:
        r = ray_server.post(f"/memes/{name}/gen", json=QUICK)
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif", r.text
        assert name in r.headers["x-replica-memes"].split(",")
        replicas.add(r.headers["x-replica"])
    held = []
    for _ in range(3):
        for name in MEMES:
            r = ray_server.post(f"/memes/{name}/gen", json=QUICK)
            held.append(r.headers["x-meme-was-loaded"] == "1")
            replicas.add(r.headers["x-replica"])
    assert len(replicas) == 2  # both replicas served
    assert sum(held) >= 0.9 * len(held), held  # later requests ran where their meme was already loaded


def test_concurrent_requests_form_batches(ray_server):
    bodies = [{**QUICK, "seed": s, "variation": 0.3} for s in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda b: ray_server.post("/memes/m0/gen", json=b), bodies))
    assert all(r.status_code == 200 for r in responses)
    assert max(int(r.headers["x-batch-size"]) for r in responses) >= 2
    variants = ray_server.post("/memes/m1/gen", json={**QUICK, "variants": 3, "variation": 0.5}).json()
    assert [c["seed"] for c in variants["clips"]] == [0, 1, 2]


def test_errors_are_one_line_json(ray_server):
    for path, body, status in (("/memes/nope/gen", QUICK, 404), ("/memes/%2E%2E/gen", QUICK, 400),
                               ("/memes/m0/gen", {**QUICK, "steps": 0}, 422),
                               ("/memes/m0/gen", {**QUICK, "prompt": " "}, 422)):
        r = ray_server.post(path, json=body)
        assert r.status_code == status and set(r.json()) == {"error"}, (path, r.status_code, r.text)


def test_app_builder_refuses_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="unknown meme-star serve options"):
        app_builder({"memes": str(tmp_path), "gpu_count": 1})
