"""A real `meme serve` app on a loopback port for the tests (uvicorn in a thread), and waiting for it to be ready."""

import threading
import time
from contextlib import contextmanager

import httpx
import uvicorn

from memestar.serve.app import create_app
from memestar.serve.options import ServeOptions


@contextmanager
def running(options: ServeOptions):
    app = create_app(options)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            client.app = app
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def wait_ready(client, seconds=60):
    deadline = time.monotonic() + seconds
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").json()
        time.sleep(0.05)
