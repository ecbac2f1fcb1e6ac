"""Training jobs of a server: one at a time on their own thread, sharing the device with generation through the
`DeviceGate` (a batch waits at most one tuning step), each writing its meme to a private folder that is renamed
into the memes folder only when complete, so `/memes` never lists half a meme.

Every job accepted is in the journal (`journal.py`): on start, unfinished jobs resume from their last checkpoint
(the trainer resumes bit for bit) and finished ones keep answering; `stop()` drains: the running job checkpoints
and stops at its next step, and stays queued in the journal for the next start.
"""

import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import Interrupted, MemeError, without_paths
from ..formats.meme_folder import CHECKPOINT, MEME_JSON
from ..train.command import TrainOptions, train_meme
from .journal import JOB_FORMAT, JOB_JSON, JOURNALLED_OPTIONS, JobRecord, read_journal, write_job
from .worker import DeviceGate

log = logging.getLogger("memestar.serve")
JOBS_FOLDER = ".jobs"  # inside the memes folder, so the final rename stays on one file system
MAX_JOBS_KEPT = 256
STOP_WAIT_S = 600.0  # the longest `stop` waits for the running job to reach its next step and checkpoint


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
        return {
            "id": self.id,
            "meme": self.meme_id,
            "state": self.state,
            "progress": {
                "step": self.step,
                "steps": self.options.steps,
                "fraction": round(self.step / self.options.steps, 4),
                "loss": self.loss,
            },
            "error": without_paths(self.error) if self.error else None,
            "seconds": self.seconds,
        }

    def record(self) -> JobRecord:
        return JobRecord(
            format=JOB_FORMAT,
            id=self.id,
            meme_id=self.meme_id,
            clip=Path(self.options.clip).name,
            **{name: getattr(self.options, name) for name in JOURNALLED_OPTIONS},
            state=self.state,
            step=self.step,
            loss=self.loss,
            error=self.error,
            created=self.created,
            seconds=self.seconds,
        )

    @classmethod
    def from_record(cls, r: JobRecord, folder: Path) -> "TrainingJob":
        options = TrainOptions(
            clip=folder / r.clip,
            out=folder / "meme",
            quiet=True,
            **{name: getattr(r, name) for name in JOURNALLED_OPTIONS},
        )
        return cls(r.id, r.meme_id, options, r.state, r.step, r.loss, r.error, r.created, r.seconds)


class TrainingJobs:
    def __init__(self, memes_dir: Path, gate: DeviceGate, on_done=None, max_waiting: int = 4):
        self.memes_dir, self.gate, self.on_done, self.max_waiting = memes_dir, gate, on_done, max_waiting
        self.jobs: OrderedDict[str, TrainingJob] = OrderedDict()
        self._waiting: deque[TrainingJob] = deque()
        self._reserved: set[str] = set()  # meme ids of uploads being received and checked
        self._cond = threading.Condition()
        self._stopped = False
        self._halt = threading.Event()  # set by `stop`: the running job checkpoints and stops at its next step
        self.recover()
        self.thread = threading.Thread(target=self._loop, name="memestar-training", daemon=True)
        self.thread.start()

    def folder(self, job_id: str) -> Path:
        return self.memes_dir / JOBS_FOLDER / job_id

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def recover(self) -> None:
        """Takes up the journal an earlier process left: unfinished jobs queue again (to resume from their
        checkpoints), finished ones answer as they ended; a folder without a readable journal is removed."""
        for entry in read_journal(self.memes_dir / JOBS_FOLDER):
            if entry.job is None:
                log.warning("removing job folder %s: %s", entry.folder.name, entry.problem)
                remove(entry.folder)
                continue
            job = TrainingJob.from_record(entry.job, entry.folder)
            self.jobs[job.id] = job
            if job.state in ("queued", "running"):
                job.state = "queued"
                self._waiting.append(job)
        if self._waiting:
            log.info("resuming %d training job(s) from the journal", len(self._waiting))
        self._prune()

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
        """Queues a job whose clip is already in `folder(job_id)`, journalled before it is answered;
        `options.out` is set here."""
        with self._cond:
            if self._stopped:
                raise MemeError("the server is shutting down: try again when it is back")
            if len(self._waiting) >= self.max_waiting:
                raise MemeError(f"{self.max_waiting} training jobs are already waiting: try again later")
            if meme_id in self.busy_meme_ids():  # the condition's lock is reentrant
                raise MemeError(f"a job is already training meme {meme_id!r}: wait for it or choose another id")
            job = TrainingJob(job_id, meme_id, replace(options, out=self.folder(job_id) / "meme", quiet=True))
            write_job(self.folder(job_id), job.record())
            self.jobs[job_id] = job
            self._waiting.append(job)
            self._prune()
            self._cond.notify_all()
        return job

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Drains: no job starts, the running one checkpoints at its next step and stays queued in the journal."""
        with self._cond:
            self._stopped = True
            self._halt.set()
            self._cond.notify_all()
        self.thread.join(wait_s)

    def _prune(self) -> None:
        """Forgets the oldest finished jobs (and their folders) beyond MAX_JOBS_KEPT."""
        while len(self.jobs) > MAX_JOBS_KEPT:
            oldest = next((k for k, j in self.jobs.items() if j.state in ("done", "failed")), None)
            if oldest is None:
                break
            del self.jobs[oldest]
            remove(self.folder(oldest))

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._stopped)
                if self._stopped:
                    return
                job = self._waiting.popleft()
            self._run(job)

    def _journal(self, job: TrainingJob, state: str | None = None) -> None:
        """Writes the job's record; `state` journals an end the job shows only once its folder is cleaned."""
        record = job.record() if state is None else replace(job.record(), state=state)
        try:
            write_job(self.folder(job.id), record)
        except MemeError as e:  # a full disk: the job goes on, its journal is one state behind
            log.warning("could not journal job %s: %s", job.id, e)

    def _run(self, job: TrainingJob) -> None:
        t = time.perf_counter()
        job.state = "running"
        self._journal(job)

        def on_step(step: int, loss: float) -> None:
            job.step, job.loss = step, loss
            if job.options.checkpoint_every and step % job.options.checkpoint_every == 0:
                self._journal(job)  # the step a restart resumes from
            self.gate.yield_to_generation()

        def between_steps() -> None:
            if self._halt.is_set():
                raise Interrupted("the server is stopping")
            self.gate.yield_to_generation()

        out = job.options.out
        try:
            if not (out / MEME_JSON).is_file():  # else the meme was complete when the last process stopped
                resume = (out / CHECKPOINT).is_file()
                options = replace(job.options, resume=resume, force=out.exists() and not resume)
                with self.gate.training():  # between any two steps (tuning, inversion, preview) batches run
                    train_meme(options, on_step=on_step, between_steps=between_steps, stop=self._halt)
            target = self.memes_dir / job.meme_id
            if target.exists():
                raise MemeError(
                    f"meme {job.meme_id!r} appeared while the job ran: it was kept, and this job's meme dropped"
                )
            (out / CHECKPOINT).unlink(missing_ok=True)
            out.rename(target)
            ending = "done"
            if self.on_done is not None:
                self.on_done(job)
        except Interrupted as e:
            if self._halt.is_set():  # drained: the checkpoint and the clip stay for the next start
                job.state = "queued"
                self._journal(job)
                log.info(
                    "job %s stopped at step %d of %d; it resumes on the next start", job.id, job.step, job.options.steps
                )
                return
            job.error, ending = str(e), "failed"
        except MemeError as e:
            job.error, ending = str(e), "failed"
        except Exception as e:  # noqa: BLE001 (a job fails with one line; the server lives on)
            job.error = f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ending = "failed"
        job.seconds = round(time.perf_counter() - t, 3)
        self._journal(job, state=ending)
        for path in self.folder(job.id).iterdir():  # the clip and the half-written meme go; the journal stays
            if path.name != JOB_JSON:
                remove(path)
        job.state = ending  # a client that sees the end finds the folder as the journal leaves it


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
