"""The device worker without a model: batches formed by key within the window, cut to the CUDA-graph buckets, the
queue bound, deadlines, cancelled requests dropped, a failing batch reported to each of its requests, and the gate
that lets generation in between training steps."""

import threading
import time

import pytest

from memestar.runtime.settings import GenRequest, GenSettings
from memestar.serve.worker import BatchWorker, DeadlineExceeded, DeviceGate, GenJob, QueueFull


def job(meme="a", steps=2, clips=1, deadline=60.0) -> GenJob:
    requests = [GenRequest(f"p{i}", GenSettings(steps=steps, seed=i)) for i in range(clips)]
    return GenJob(meme, requests, time.monotonic() + deadline)


class Recorder:
    def __init__(self, delay=0.0, fail=False):
        self.batches, self.delay, self.fail = [], delay, fail

    def __call__(self, meme_id, requests):
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("the device broke")
        self.batches.append((meme_id, len(requests)))
        return [f"{meme_id}:{r.prompt}" for r in requests]


def test_batches_by_key_within_the_window_and_cut_to_buckets():
    for buckets, expected in (
        (None, [("a", 5), ("b", 1), ("a", 1)]),  # steps 3: another schedule, another batch
        ((1, 2, 4, 8), [("a", 4), ("a", 1), ("b", 1), ("a", 1)]),
    ):  # 4, not 5 padded to 8
        run = Recorder()
        worker = BatchWorker(run, window_s=0.3, max_batch=8, buckets=buckets)
        jobs = [job("a") for _ in range(5)] + [job("b"), job("a", steps=3)]
        futures = [worker.submit(j) for j in jobs]
        results = [f.result(timeout=10) for f in futures]
        worker.stop()
        assert results[0] == ["a:p0"] and results[5] == ["b:p0"]
        assert run.batches == expected


def test_queue_bound_deadline_cancel_and_failure():
    gate = threading.Event()
    worker = BatchWorker(lambda m, r: gate.wait(5) and ["x"] * len(r), window_s=0.0, max_queue=2)
    running = worker.submit(job())
    time.sleep(0.1)  # the first is on the device, waiting for the gate
    expired, cancelled = worker.submit(job(deadline=0.01)), worker.submit(job())
    with pytest.raises(QueueFull, match="full"):
        worker.submit(job())
    assert cancelled.cancel()
    time.sleep(0.05)
    gate.set()
    assert running.result(timeout=5) == ["x"]
    with pytest.raises(DeadlineExceeded):
        expired.result(timeout=5)
    deadline = time.monotonic() + 5
    while worker.dropped < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    worker.stop()
    broken = BatchWorker(Recorder(fail=True), window_s=0.0)
    with pytest.raises(RuntimeError, match="device broke"):
        broken.submit(job()).result(timeout=5)
    assert broken.alive() and broken.submit(job()).exception(timeout=5)  # the worker lives on
    broken.stop()


def test_generation_waits_at_most_one_training_step():
    gate, log = DeviceGate(), []

    def train():
        with gate.training():
            for step in range(5):
                log.append(("step", step))
                time.sleep(0.05)
                gate.yield_to_generation()

    trainer = threading.Thread(target=train)
    trainer.start()
    time.sleep(0.07)  # inside step 1
    asked = time.monotonic()
    with gate.generation():
        waited = time.monotonic() - asked
        log.append(("batch", None))
    trainer.join()
    assert waited < 0.1  # the rest of one step, not the rest of the run
    assert log.index(("batch", None)) < log.index(("step", 4))
