"""The one worker that owns the device: a bounded queue, a micro-batcher in front of it, and a gate it shares with
training.

Requests for the same (meme, sampler, steps, guided-or-not) that arrive within `window_s` of the oldest waiting
one run as one batch of up to `max_batch` clips (`Meme.generate_batch`). The queue holds at most `max_queue`
requests: `submit` refuses more at once (the HTTP layer answers 503) rather than buffering. A request whose
client went away or whose deadline passed before its batch started is dropped, not run.

The device is shared with training by `DeviceGate`: generation first. A training run holds the gate only between
its steps while no batch waits, so a request waits at most one training step.
"""

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..runtime.generation import Generation
from ..runtime.settings import GenRequest


class QueueFull(Exception):
    """The queue holds `max_queue` requests: try again shortly."""


class DeadlineExceeded(Exception):
    """The request's deadline passed before its batch ran."""


@dataclass
class GenJob:
    """One HTTP request: one prompt's clips (its variants), for one meme."""

    meme_id: str
    requests: list[GenRequest]
    deadline: float  # time.monotonic()
    future: Future = field(default_factory=Future)  # -> list[Generation]
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def key(self) -> tuple:
        return self.meme_id, self.requests[0].batch_key


class DeviceGate:
    """Turns on the device between generation (first) and training (between its steps, when no batch waits)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._busy = False
        self._waiting_batches = 0

    @contextmanager
    def generation(self):
        with self._cond:
            self._waiting_batches += 1
            self._cond.wait_for(lambda: not self._busy)
            self._waiting_batches -= 1
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    @contextmanager
    def training(self):
        with self._cond:
            self._cond.wait_for(lambda: not self._busy and not self._waiting_batches)
            self._busy = True
        try:
            yield self
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def yield_to_generation(self) -> None:
        """Called by training, holding the gate, between steps: lets every waiting batch run first."""
        with self._cond:
            if not self._waiting_batches:
                return
            self._busy = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._busy and not self._waiting_batches)
            self._busy = True


class BatchWorker:
    """`run_batch(meme_id, requests) -> generations` on one thread, fed by `submit` from any thread."""

    def __init__(
        self,
        run_batch: Callable[[str, list[GenRequest]], list[Generation]],
        *,
        window_s: float = 0.01,
        max_batch: int = 8,
        max_queue: int = 64,
        gate: DeviceGate | None = None,
        buckets: tuple[int, ...] | None = None,
        on_batch: Callable[[int, dict], None] | None = None,
    ):
        self.run_batch, self.window_s, self.max_batch, self.max_queue = run_batch, window_s, max_batch, max_queue
        self.buckets = buckets  # batch sizes the device runs without padding (CUDA graphs): batches are cut to them
        self.gate = gate or DeviceGate()
        self.on_batch = on_batch  # (clips, seconds) after each batch, for metrics
        self._pending: deque[GenJob] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        self.batches: list[int] = []  # clips per batch run, most recent last (bounded)
        self.dropped = 0
        self.thread = threading.Thread(target=self._loop, name="memestar-device", daemon=True)
        self.thread.start()

    @property
    def depth(self) -> int:
        """Requests waiting (their clips may be more)."""
        return len(self._pending)

    def alive(self) -> bool:
        return self.thread.is_alive() and not self._stopped

    def submit(self, job: GenJob) -> Future:
        with self._cond:
            if self._stopped:
                raise QueueFull("the server is shutting down")
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} requests)")
            self._pending.append(job)
            self._cond.notify_all()
        return job.future

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            for job in self._pending:
                job.future.cancel()
            self._pending.clear()
            self._cond.notify_all()
        self.thread.join(timeout=30)

    def _next_batch(self) -> list[GenJob]:
        """Waits for work, then up to `window_s` after the oldest request for others that can join its batch."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._stopped)
            if self._stopped:
                return []
            first = self._pending[0]
            close = first.enqueued + self.window_s
            while True:
                taken, clips = [], 0
                for job in self._pending:
                    if job.key == first.key and clips + len(job.requests) <= self.max_batch:
                        taken.append(job)
                        clips += len(job.requests)
                now = time.monotonic()
                if clips >= self.max_batch or now >= close or self._stopped:
                    break
                self._cond.wait(close - now)
            if self.buckets:  # 5 clips would run as 8 (3 wasted): run 4 now, the rest with the next batch
                fits = max([b for b in self.buckets if b <= clips], default=clips)
                while len(taken) > 1 and clips > fits:
                    clips -= len(taken.pop().requests)
            for job in taken:
                self._pending.remove(job)
            return taken

    def _loop(self) -> None:
        while not self._stopped:
            jobs = self._next_batch()
            now = time.monotonic()
            live = []
            for job in jobs:
                if not job.future.set_running_or_notify_cancel():  # the client went away
                    self.dropped += 1
                elif now > job.deadline:
                    job.future.set_exception(DeadlineExceeded("the deadline passed while the request waited"))
                else:
                    live.append(job)
            if not live:
                continue
            requests = [r for job in live for r in job.requests]
            try:
                with self.gate.generation():
                    generations = self.run_batch(live[0].meme_id, requests)
            except BaseException as e:  # every waiting request hears of it; the worker lives on
                for job in live:
                    job.future.set_exception(e)
                continue
            self.batches = (self.batches + [len(requests)])[-1000:]
            if self.on_batch is not None:
                self.on_batch(len(requests), generations[0].seconds)
            k = 0
            for job in live:
                job.future.set_result(generations[k : k + len(job.requests)])
                k += len(job.requests)
