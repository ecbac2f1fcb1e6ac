"""Generation on `meme serve` alone and while a subject job learns beside it (issue 33, part 3), on this machine.

Needs `make demo` first: the popping meme of demo/ is served (its exports left out) with an empty subjects folder;
30 requests of 10 steps are timed one after another, then a subject (the koala's cut-out, `meme subject learn`'s
defaults, on the meme's base) is uploaded through `POST /subjects` and requests are timed back to back while it
learns. Prints JSON.

    python benchmarks/serve_subject_job.py --demo demo
"""

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from memestar.bench.load import ServerProcess
from memestar.tiny.emoji_world import atlas

BODY = {"prompt": "a koala popping", "steps": 10}


def stats(seconds: list[float]) -> dict:
    s = sorted(seconds)
    return {
        "n": len(s),
        "median_s": round(statistics.median(s), 3),
        "p95_s": round(s[int(0.95 * (len(s) - 1))], 3),
        "max_s": round(s[-1], 3),
    }


def timed(client: httpx.Client, body: dict) -> float:
    t = time.perf_counter()
    r = client.post("/memes/popping/gen", json=body)
    assert r.status_code == 200, r.text
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, default=Path("demo"))
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(a.demo / "meme-popping", root / "memes" / "popping", ignore=shutil.ignore_patterns("export"))
        (root / "subjects").mkdir()
        photo = root / "koala.png"
        atlas()["koala"].save(photo)
        with ServerProcess(root / "memes", "cpu", subjects=root / "subjects") as server:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                for _ in range(3):
                    timed(client, BODY)  # warm
                alone = [timed(client, BODY) for _ in range(30)]
                files = [("photos", ("koala.png", photo.read_bytes(), "image/png"))]
                r = client.post("/subjects", data={"name": "my-koala", "meme": "popping"}, files=files)
                assert r.status_code == 202, r.text
                url, during = r.json()["url"], []
                while (job := client.get(url).json())["state"] in ("queued", "running"):
                    if job["state"] != "running" or job["progress"]["step"] == 0:
                        time.sleep(0.05)  # loading the base and encoding the views hold the device once
                        continue
                    seconds = timed(client, BODY)
                    if client.get(url).json()["state"] == "running":
                        during.append(seconds)
                learned = client.post("/memes/popping/gen", json={"subject": "my-koala", "steps": 10}).status_code
    summary = {
        "alone": stats(alone),
        "during_job": stats(during),
        "job": {"state": job["state"], "steps": job["progress"]["steps"], "seconds": job["seconds"]},
        "gen_with_the_learned_subject": learned,
    }
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
