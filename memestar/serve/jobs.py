"""Training jobs of a server: one at a time on their own thread, sharing the device with generation through the
`DeviceGate` (a batch waits at most one tuning step), each writing its meme to a private folder that is renamed
into the memes folder only when complete, so `/memes` never lists half a meme."""

import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import MemeError, without_paths
from ..train.meme import TrainOptions, train_meme
from .worker import DeviceGate

JOBS_FOLDER = ".jobs"  # inside the memes folder, so the final rename stays on one file system
MAX_JOBS_KEPT = 256


@dataclass
class TrainingJob:
    id: str
    meme_id: str
    options: TrainOptions
    state: str = "queued"  # then "running", and "done" or "failed"
    step: int = 0
    loss: float | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    seconds: float | None = None

    def public(self) -> dict:
        return {"id": self.id, "meme": self.meme_id, "state": self.state,
                "progress": {"step": self.step, "steps": self.options.steps,
                             "fraction": round(self.step / self.options.steps, 4), "loss": self.loss},
                "error": without_paths(self.error) if self.error else None, "seconds": self.seconds}


class TrainingJobs:
    def __init__(self, memes_dir: Path, gate: DeviceGate, on_done=None, max_waiting: int = 4):
        self.memes_dir, self.gate, self.on_done, self.max_waiting = memes_dir, gate, on_done, max_waiting
        self.jobs: OrderedDict[str, TrainingJob] = OrderedDict()
        self._waiting: deque[TrainingJob] = deque()
        self._reserved: set[str] = set()  # meme ids of uploads being received and checked
        self._cond = threading.Condition()
        self._stopped = False
        self.thread = threading.Thread(target=self._loop, name="memestar-training", daemon=True)
        self.thread.start()

    def folder(self, job_id: str) -> Path:
        return self.memes_dir / JOBS_FOLDER / job_id

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def busy_meme_ids(self) -> set[str]:
        with self._cond:
            return {j.meme_id for j in self.jobs.values() if j.state in ("queued", "running")}

    def reserve(self, meme_id: str) -> bool:
        """Holds `meme_id` for an upload being checked, or False when another upload or a job holds it."""
        with self._cond:
            if meme_id in self._reserved or meme_id in self.busy_meme_ids():
                return False
            self._reserved.add(meme_id)
            return True

    def release(self, meme_id: str) -> None:
        with self._cond:
            self._reserved.discard(meme_id)

    def submit(self, job_id: str, meme_id: str, options: TrainOptions) -> TrainingJob:
        """Queues a job whose clip is already in `folder(job_id)`; `options.out` is set here."""
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise MemeError(f"{self.max_waiting} training jobs are already waiting: try again later")
            if meme_id in self.busy_meme_ids():  # the condition's lock is reentrant
                raise MemeError(f"a job is already training meme {meme_id!r}: wait for it or choose another id")
            job = TrainingJob(job_id, meme_id, replace(options, out=self.folder(job_id) / "meme", quiet=True))
            self.jobs[job_id] = job
            self._waiting.append(job)
            while len(self.jobs) > MAX_JOBS_KEPT:
                oldest = next((k for k, j in self.jobs.items() if j.state in ("done", "failed")), None)
                if oldest is None:
                    break
                del self.jobs[oldest]
            self._cond.notify_all()
        return job

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._stopped)
                if self._stopped:
                    return
                job = self._waiting.popleft()
            self._run(job)

    def _run(self, job: TrainingJob) -> None:
        t = time.perf_counter()
        job.state = "running"

        def on_step(step: int, loss: float) -> None:
            job.step, job.loss = step, loss
            self.gate.yield_to_generation()

        try:
            with self.gate.training():  # between any two steps (tuning, inversion, preview) waiting batches run
                train_meme(job.options, on_step=on_step, between_steps=self.gate.yield_to_generation)
            target = self.memes_dir / job.meme_id
            if target.exists():
                raise MemeError(f"meme {job.meme_id!r} appeared while the job ran: it was kept, and this job's "
                                f"meme dropped")
            job.options.out.rename(target)
            job.state = "done"
            if self.on_done is not None:
                self.on_done(job)
        except MemeError as e:
            job.error, job.state = str(e), "failed"
        except Exception as e:  # noqa: BLE001 (a job fails with one line; the server lives on)
            job.error, job.state = f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", \
                "failed"
        finally:
            job.seconds = round(time.perf_counter() - t, 3)
            shutil.rmtree(self.folder(job.id), ignore_errors=True)
