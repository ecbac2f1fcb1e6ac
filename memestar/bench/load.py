"""`meme bench --serve`: `meme serve` under load, on loopback, from a bounded async client (httpx).

Starts the server as its own process (as a deployment runs it) on a folder of untrained memes of the preset's
base, then for each client count sends `requests_per_client` requests per client, the memes taken in turn, each
client waiting for its answer before the next: throughput (clips/s), p50/p95/p99 latency, batch sizes, 503s,
errors and requests lost (no answer). Then the target run: 16 clients on one meme against one client on it
(DESIGN.md: at least 2x the sequential rate, no errors, none lost). Then a burst at a queue of 4 that must be
answered 503 at once rather than hang.
"""

import asyncio
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import files
from ..errors import MemeError
from .command import make_untrained_meme
from .options import PRESETS, LoadOptions

TARGET_CLIENTS, TARGET_SPEEDUP = 16, 2.0
BURST_QUEUE = 4
READY_TIMEOUT_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`meme serve` in a child process on a free loopback port, stopped on exit."""

    def __init__(self, memes: Path, device: str, **options):
        self.port = free_port()
        args = [sys.executable, "-m", "memestar.cli", "serve", str(memes), "--port", str(self.port), "--device", device]
        for name, value in options.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "MEMESTAR_TOKEN": ""}
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ServerProcess":
        import httpx

        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MemeError(f"meme serve exited: {self.process.stderr.read().strip().splitlines()[-1:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.__exit__()
        raise MemeError(f"meme serve was not ready within {READY_TIMEOUT_S} s")

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def drive(url: str, clients: int, per_client: int, memes: list[str], body: dict) -> dict:
    """`clients` clients, each sending `per_client` requests one after another; what came back."""
    import httpx

    results = []

    async def client_loop(client, k: int):
        for j in range(per_client):
            i = k * per_client + j
            t = time.perf_counter()
            try:
                r = await client.post(f"/memes/{memes[i % len(memes)]}/gen", json={**body, "seed": i})
                results.append((r.status_code, time.perf_counter() - t, int(r.headers.get("x-batch-size", 0))))
            except httpx.HTTPError as e:
                results.append((type(e).__name__, time.perf_counter() - t, 0))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        t = time.perf_counter()
        await asyncio.gather(*(client_loop(client, k) for k in range(clients)))
        wall = time.perf_counter() - t
    ok = [(s, lat, b) for s, lat, b in results if s == 200]
    latencies = np.array([lat for _, lat, _ in ok]) if ok else np.zeros(1)
    batches = [b for _, _, b in ok]
    return {
        "clients": clients,
        "requests": clients * per_client,
        "ok": len(ok),
        "wall_s": wall,
        "clips_per_s": len(ok) / wall,
        "p50_s": float(np.percentile(latencies, 50)),
        "p95_s": float(np.percentile(latencies, 95)),
        "p99_s": float(np.percentile(latencies, 99)),
        "mean_batch": float(np.mean(batches)) if batches else 0.0,
        "max_batch": max(batches, default=0),
        "status_503": sum(s == 503 for s, _, _ in results),
        "max_503_s": max((lat for s, lat, _ in results if s == 503), default=0.0),
        "errors": sum(s not in (200, 503) for s, _, _ in results),
        "lost": clients * per_client - len(results),
    }


def run_load(o: LoadOptions, log=print) -> dict:
    o.check()
    preset = PRESETS[o.preset]
    body = {"prompt": "a blue circle sliding", "steps": o.steps}
    report = {
        "benchmark": "meme bench --serve",
        "preset": o.preset,
        "base": preset["base"],
        "frames": preset["frames"],
        "size": preset["size"],
        "steps": o.steps,
        "memes": o.memes,
        "date": datetime.date.today().isoformat(),
        "options": asdict(o),
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"meme{i}" for i in range(o.memes)]
        for name in names:
            make_untrained_meme(preset["base"], preset["frames"], preset["size"], Path(tmp) / name)
        with ServerProcess(Path(tmp), o.device) as server:
            report["device"] = device_of(server.url)
            log(f"serving on {report['device']}")
            asyncio.run(drive(server.url, 1, 2, names, body))  # warm-up: every capture and cache
            for clients in o.clients:
                log(f"{clients} clients over {len(names)} memes ...")
                report["runs"].append(asyncio.run(drive(server.url, clients, o.requests_per_client, names, body)))
            log(f"target: {TARGET_CLIENTS} clients on one meme against one ...")
            sequential = asyncio.run(drive(server.url, 1, max(4, o.requests_per_client), names[:1], body))
            together = asyncio.run(drive(server.url, TARGET_CLIENTS, o.requests_per_client, names[:1], body))
            speedup = together["clips_per_s"] / sequential["clips_per_s"]
            report["target"] = {
                "sequential": sequential,
                "concurrent": together,
                "speedup": speedup,
                "met": speedup >= TARGET_SPEEDUP
                and not together["errors"]
                and not together["lost"]
                and not together["status_503"],
            }
        log(f"burst at a queue of {BURST_QUEUE} ...")
        with ServerProcess(Path(tmp), o.device, max_queue=BURST_QUEUE, window_ms=0) as server:
            burst = asyncio.run(drive(server.url, 4 * BURST_QUEUE, 1, names[:1], {**body, "steps": o.steps * 4}))
            report["burst"] = burst
    return report


def device_of(url: str) -> str:
    import httpx

    return httpx.get(f"{url}/readyz", timeout=5).json()["device"]


def markdown(r: dict) -> str:
    lines = [
        f"# meme bench --serve: {r['base']}, {r['frames']} frames, {r['size']} px, {r['steps']} steps",
        "",
        f"Device: {r['device']}. Date: {r['date']}. {r['memes']} memes, each client sends "
        f"{r['options']['requests_per_client']} requests one after another, memes in turn.",
        "",
        "| clients | requests | clips/s | p50 s | p95 s | p99 s | mean batch | max batch | 503 | errors | lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        lines.append(
            f"| {x['clients']} | {x['requests']} | {x['clips_per_s']:.2f} | {x['p50_s']:.3f} | "
            f"{x['p95_s']:.3f} | {x['p99_s']:.3f} | {x['mean_batch']:.2f} | {x['max_batch']} | "
            f"{x['status_503']} | {x['errors']} | {x['lost']} |"
        )
    t = r["target"]
    lines += [
        "",
        f"Target, one meme: {TARGET_CLIENTS} clients {t['concurrent']['clips_per_s']:.2f} clips/s against "
        f"1 client {t['sequential']['clips_per_s']:.2f}: {t['speedup']:.2f}x (target >= {TARGET_SPEEDUP:g}x, "
        f"no errors, none lost): {'met' if t['met'] else 'not met'}.",
    ]
    b = r["burst"]
    lines += [
        "",
        f"Burst: {b['requests']} requests at once at a queue of {BURST_QUEUE}: {b['ok']} answered, "
        f"{b['status_503']} refused with 503 (the slowest refusal in {b['max_503_s']:.3f} s), "
        f"{b['errors']} errors, "
        f"{b['lost']} lost.",
    ]
    return "\n".join(lines) + "\n"


def write_load_report(report: dict, json_path: Path | None = None, markdown_path: Path | None = None):
    stem = (
        f"serve-{report['preset']}-{report['frames']}f-{report['size']}px-{files.slug(report['device'])}-"
        f"{report['date']}"
    )
    return files.write_report(report, markdown(report), stem, json_path, markdown_path)
