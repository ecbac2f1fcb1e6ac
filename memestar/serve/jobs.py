"""A server's jobs: training a meme from a clip, and learning a subject from photos. One at a time on their own
thread, sharing the device with generation through the `DeviceGate` (a batch waits at most one step), each writing
what it makes to a private folder that is renamed into the memes (or subjects) folder only when complete, so
`/memes` and `/subjects` never list half of one.

Every job accepted is in the journal (`journal.py`): on start, unfinished jobs resume (a meme from its last
checkpoint, bit for bit; a subject, seconds long, from its photos again) and finished ones keep answering; `stop()`
drains: the running job stops at its next step (a meme checkpoints) and stays queued in the journal for the next
start.
"""

import dataclasses
import logging
import shutil
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from ..errors import Interrupted, MemeError, without_paths
from ..formats.meme_folder import CHECKPOINT, MEME_JSON
from ..train.command import TrainOptions, train_meme
from ..train.options import SubjectOptions
from ..train.subject import learn_subject
from .journal import (
    JOB_FORMAT,
    JOB_JSON,
    JOURNALLED_OPTIONS,
    PHOTOS,
    SUBJECT_JOB_FORMAT,
    SUBJECT_JOURNALLED_OPTIONS,
    JobProgress,
    JobRecord,
    SubjectJobRecord,
    read_journal,
    write_job,
)
from .worker import DeviceGate

log = logging.getLogger("memestar.serve")
JOBS_FOLDER = ".jobs"  # inside the memes (subjects) folder, so the final rename stays on one file system
MAX_JOBS_KEPT = 256
STOP_WAIT_S = 600.0  # the longest `stop` waits for the running job to reach its next step and checkpoint
PROGRESS = tuple(f.name for f in dataclasses.fields(JobProgress))  # what every job's journal keeps of it


@dataclass(kw_only=True)
class Job:
    """What every job has: its id, state and progress. `kind` names what it makes, `name` which one."""

    kind: ClassVar[str]
    resumes: ClassVar[bool]  # a stopped job goes on from its last step (else it starts again)
    id: str
    state: str = "queued"  # then "running", and "done" or "failed"
    step: int = 0
    loss: float | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    seconds: float | None = None

    @property
    def name(self) -> str:
        raise NotImplementedError

    @property
    def steps(self) -> int:
        return self.options.steps  # both kinds' options declare it

    def public(self) -> dict:
        return {
            "id": self.id,
            self.kind: self.name,
            "state": self.state,
            "progress": {
                "step": self.step,
                "steps": self.steps,
                "fraction": round(self.step / self.steps, 4),
                "loss": self.loss,
            },
            "error": without_paths(self.error) if self.error else None,
            "seconds": self.seconds,
        }

    def progress(self) -> dict:
        return {name: getattr(self, name) for name in PROGRESS}

    def make(self, out: Path, on_step, between_steps, stop) -> None:
        """Makes the job's meme or subject in `out`, with `train_meme`'s hooks (`stop` ends it with Interrupted)."""
        raise NotImplementedError

    def checkpoints_at(self, step: int) -> bool:
        """Whether `make` writes a checkpoint at `step` (the journal then records the step to resume from)."""
        return False

    def finish(self, out: Path) -> None:
        """Clears what `out` holds only while it is made, before it is renamed into place."""


@dataclass(kw_only=True)
class TrainingJob(Job):
    """Training a meme from the clip in the job's folder; it checkpoints every `checkpoint_every` steps."""

    kind: ClassVar[str] = "meme"
    resumes: ClassVar[bool] = True
    meme_id: str
    options: TrainOptions

    @property
    def name(self) -> str:
        return self.meme_id

    def record(self) -> JobRecord:
        return JobRecord(
            format=JOB_FORMAT,
            meme_id=self.meme_id,
            clip=Path(self.options.clip).name,
            **{name: getattr(self.options, name) for name in JOURNALLED_OPTIONS},
            **self.progress(),
        )

    @classmethod
    def from_record(cls, r: JobRecord, folder: Path) -> "TrainingJob":
        options = TrainOptions(
            clip=folder / r.clip, quiet=True, **{name: getattr(r, name) for name in JOURNALLED_OPTIONS}
        )
        return cls(meme_id=r.meme_id, options=options, **{name: getattr(r, name) for name in PROGRESS})

    def checkpoints_at(self, step: int) -> bool:
        return bool(self.options.checkpoint_every) and step % self.options.checkpoint_every == 0

    def make(self, out: Path, on_step, between_steps, stop) -> None:
        if (out / MEME_JSON).is_file():  # the meme was complete when the last process stopped
            return
        resume = (out / CHECKPOINT).is_file()
        options = replace(self.options, out=out, resume=resume, force=out.exists() and not resume)
        train_meme(options, on_step=on_step, between_steps=between_steps, stop=stop)

    def finish(self, out: Path) -> None:
        (out / CHECKPOINT).unlink(missing_ok=True)


@dataclass(kw_only=True)
class SubjectJob(Job):
    """Learning a subject from the photos in the job's folder (`photos/`)."""

    kind: ClassVar[str] = "subject"
    resumes: ClassVar[bool] = False
    options: SubjectOptions

    @property
    def name(self) -> str:
        return self.options.name

    def record(self) -> SubjectJobRecord:
        return SubjectJobRecord(
            format=SUBJECT_JOB_FORMAT,
            **{name: getattr(self.options, name) for name in SUBJECT_JOURNALLED_OPTIONS},
            **self.progress(),
        )

    @classmethod
    def from_record(cls, r: SubjectJobRecord, folder: Path) -> "SubjectJob":
        options = SubjectOptions(
            photos=folder / PHOTOS, quiet=True, **{name: getattr(r, name) for name in SUBJECT_JOURNALLED_OPTIONS}
        )
        return cls(options=options, **{name: getattr(r, name) for name in PROGRESS})

    def make(self, out: Path, on_step, between_steps, stop) -> None:
        learn_subject(replace(self.options, out=out, force=True, quiet=True), on_step=on_step, stop=stop)


JOB_KINDS = {job.kind: job for job in (TrainingJob, SubjectJob)}


class TrainingJobs:
    """The server's jobs: memes train into `memes_dir`, subjects learn into `subjects_dir` (None: none are taken)."""

    def __init__(
        self, memes_dir: Path, gate: DeviceGate, on_done=None, max_waiting: int = 4, subjects_dir: Path | None = None
    ):
        self.gate, self.on_done, self.max_waiting = gate, on_done, max_waiting
        self.roots = {"meme": memes_dir, **({"subject": subjects_dir} if subjects_dir is not None else {})}
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._reserved: set[tuple[str, str]] = set()  # (kind, name) of uploads being received and checked
        self._cond = threading.Condition()
        self._stopped = False
        self._halt = threading.Event()  # set by `stop`: the running job stops at its next step
        self.recover()
        self.thread = threading.Thread(target=self._loop, name="memestar-training", daemon=True)
        self.thread.start()

    def folder(self, kind: str, job_id: str) -> Path:
        return self.roots[kind] / JOBS_FOLDER / job_id

    def target(self, job: Job) -> Path:
        return self.roots[job.kind] / job.name

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def recover(self) -> None:
        """Takes up the journals an earlier process left: unfinished jobs queue again (to resume), finished ones
        answer as they ended; a folder without a readable journal is removed."""
        found = []
        for kind, root in self.roots.items():
            for entry in read_journal(root / JOBS_FOLDER, kind):
                if entry.job is None:
                    log.warning("removing job folder %s: %s", entry.folder.name, entry.problem)
                    remove(entry.folder)
                else:
                    found.append(JOB_KINDS[kind].from_record(entry.job, entry.folder))
        for job in sorted(found, key=lambda j: j.created):
            self.jobs[job.id] = job
            if job.state in ("queued", "running"):
                job.state = "queued"
                self._waiting.append(job)
        if self._waiting:
            log.info("resuming %d job(s) from the journal", len(self._waiting))
        self._prune()

    def busy(self) -> set[tuple[str, str]]:
        """(kind, name) of every job queued or running."""
        with self._cond:
            return {(j.kind, j.name) for j in self.jobs.values() if j.state in ("queued", "running")}

    def reserve(self, kind: str, name: str) -> bool:
        """Holds `name` for an upload being checked, or False when another upload or a job holds it."""
        with self._cond:
            if (kind, name) in self._reserved or (kind, name) in self.busy():
                return False
            self._reserved.add((kind, name))
            return True

    def release(self, kind: str, name: str) -> None:
        with self._cond:
            self._reserved.discard((kind, name))

    def submit(self, job: Job) -> Job:
        """Queues `job`, whose inputs are already in its folder, journalled before it is answered."""
        with self._cond:
            if self._stopped:
                raise MemeError("the server is shutting down: try again when it is back")
            if len(self._waiting) >= self.max_waiting:
                raise MemeError(f"{self.max_waiting} jobs are already waiting: try again later")
            if (job.kind, job.name) in self.busy():  # the condition's lock is reentrant
                raise MemeError(f"a job is already making {job.kind} {job.name!r}: wait for it or choose another name")
            write_job(self.folder(job.kind, job.id), job.record())
            self.jobs[job.id] = job
            self._waiting.append(job)
            self._prune()
            self._cond.notify_all()
        return job

    def stop(self, wait_s: float = STOP_WAIT_S) -> None:
        """Drains: no job starts, the running one stops at its next step and stays queued in the journal."""
        with self._cond:
            self._stopped = True
            self._halt.set()
            self._cond.notify_all()
        self.thread.join(wait_s)

    def _prune(self) -> None:
        """Forgets the oldest finished jobs (and their folders) beyond MAX_JOBS_KEPT."""
        while len(self.jobs) > MAX_JOBS_KEPT:
            oldest = next((j for j in self.jobs.values() if j.state in ("done", "failed")), None)
            if oldest is None:
                break
            del self.jobs[oldest.id]
            remove(self.folder(oldest.kind, oldest.id))

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._stopped)
                if self._stopped:
                    return
                job = self._waiting.popleft()
            self._run(job)

    def _journal(self, job: Job, state: str | None = None) -> None:
        """Writes the job's record; `state` journals an end the job shows only once its folder is cleaned."""
        record = job.record() if state is None else replace(job.record(), state=state)
        try:
            write_job(self.folder(job.kind, job.id), record)
        except MemeError as e:  # a full disk: the job goes on, its journal is one state behind
            log.warning("could not journal job %s: %s", job.id, e)

    def _run(self, job: Job) -> None:
        t = time.perf_counter()
        job.state = "running"
        self._journal(job)

        def on_step(step: int, loss: float) -> None:
            job.step, job.loss = step, loss
            if job.checkpoints_at(step):
                self._journal(job)  # the step a restart resumes from
            self.gate.yield_to_generation()

        def between_steps() -> None:
            if self._halt.is_set():
                raise Interrupted("the server is stopping")
            self.gate.yield_to_generation()

        folder = self.folder(job.kind, job.id)
        out = folder / job.kind
        try:
            with self.gate.training():  # between any two steps (tuning, inversion, preview, learning) batches run
                job.make(out, on_step, between_steps, self._halt)
            target = self.target(job)
            if target.exists():
                raise MemeError(
                    f"{job.kind} {job.name!r} appeared while the job ran: it was kept, and this job's {job.kind} "
                    f"dropped"
                )
            job.finish(out)
            out.rename(target)
            ending = "done"
            if self.on_done is not None:
                self.on_done(job)
        except Interrupted as e:
            if self._halt.is_set():  # drained: the inputs (and a meme's checkpoint) stay for the next start
                log.info("job %s stopped at step %d of %d; it goes on at the next start", job.id, job.step, job.steps)
                if not job.resumes:
                    job.step, job.loss = 0, None
                job.state = "queued"
                self._journal(job)
                return
            job.error, ending = str(e), "failed"
        except MemeError as e:
            job.error, ending = str(e), "failed"
        except Exception as e:  # noqa: BLE001 (a job fails with one line; the server lives on)
            job.error = f"internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ending = "failed"
        job.seconds = round(time.perf_counter() - t, 3)
        self._journal(job, state=ending)
        for path in folder.iterdir():  # the inputs and the half-made output go; the journal stays
            if path.name != JOB_JSON:
                remove(path)
        job.state = ending  # a client that sees the end finds the folder as the journal leaves it


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
