"""The server's journal of jobs: `job.json` in each job's folder, under `memes/.jobs/` for a meme's training and
`subjects/.jobs/` for a subject's learning, rewritten (atomically) whenever the job changes state. A job answered
202 outlives the process: on start the server reads the journal back, resumes each unfinished job (a meme from its
last checkpoint, a subject, seconds long, from its photos again), answers for the finished ones, and removes the
folders it cannot read."""

from dataclasses import dataclass
from pathlib import Path

from ..checks import JOB_ID_PATTERN, MEME_ID_PATTERN, SUBJECT_NAME_PATTERN
from ..records import read_record, record, write_record

JOB_JSON = "job.json"
JOB_FORMAT = "memestar-job/1"
SUBJECT_JOB_FORMAT = "memestar-subject-job/1"
PHOTOS = "photos"  # a subject job's folder of uploaded photos
STATES = ("queued", "running", "done", "failed")
UNREADABLE = "a server's job journal: remove the job's folder"
# the TrainOptions a job keeps, under the same names in JobRecord (the rest are the server's or the job folder's)
JOURNALLED_OPTIONS = (
    "prompt",
    "base",
    "base_config",
    "device",
    "frames",
    "size",
    "steps",
    "lr",
    "seed",
    "inversion_steps",
)
# the SubjectOptions a subject job keeps, under the same names in SubjectJobRecord
SUBJECT_JOURNALLED_OPTIONS = ("name", "base", "base_config", "device", "steps", "lr", "seed")


@record
class JobProgress:
    """What every job's journal keeps of its state."""

    id: str
    state: str
    step: int
    loss: float | None
    error: str | None
    created: float
    seconds: float | None

    def problem(self) -> str | None:
        if not JOB_ID_PATTERN.fullmatch(self.id):
            return f"id {self.id!r} is not a job id"
        if self.state not in STATES:
            return f"state {self.state!r} is not one of {', '.join(STATES)}"
        return None


@record
class JobRecord(JobProgress):
    """One training job as accepted: the upload's settings (the clip is `clip` in the job's folder) and its state."""

    format: str
    meme_id: str
    clip: str
    prompt: str
    base: str
    base_config: str | None
    device: str
    frames: int
    size: int
    steps: int
    lr: float
    seed: int
    inversion_steps: int

    def problem(self) -> str | None:
        if not MEME_ID_PATTERN.fullmatch(self.meme_id):
            return f"meme_id {self.meme_id!r} is not a meme id"
        if Path(self.clip).name != self.clip or not self.clip.startswith("clip."):
            return f"clip {self.clip!r} is not a clip's name in the job's folder"
        return super().problem()


@record
class SubjectJobRecord(JobProgress):
    """One subject-learning job as accepted: its settings (the photos are in the job's folder `photos/`) and state."""

    format: str
    name: str
    base: str
    base_config: str | None
    device: str
    steps: int
    lr: float
    seed: int

    def problem(self) -> str | None:
        if not SUBJECT_NAME_PATTERN.fullmatch(self.name):
            return f"name {self.name!r} is not a subject's name"
        return super().problem()


# what a job folder's journal holds, by the folder it is in: a meme's training, or a subject's learning
JOURNALS = {"meme": (JobRecord, JOB_FORMAT), "subject": (SubjectJobRecord, SUBJECT_JOB_FORMAT)}


@dataclass
class JournalEntry:
    """A job folder found on start: its record, or why it could not be read."""

    folder: Path
    job: JobRecord | SubjectJobRecord | None
    problem: str | None


def write_job(folder: Path, job: JobRecord | SubjectJobRecord) -> None:
    write_record(job, folder / JOB_JSON)


def read_journal(jobs_root: Path, kind: str = "meme") -> list[JournalEntry]:
    """Every job folder under `jobs_root`, of jobs of `kind` (JOURNALS), oldest first (as accepted)."""
    cls, fmt = JOURNALS[kind]
    entries = []
    for folder in sorted(jobs_root.iterdir()) if jobs_root.is_dir() else []:
        if not folder.is_dir() or folder.is_symlink():
            entries.append(JournalEntry(folder, None, "not a job folder"))
            continue
        try:
            job = read_record(cls, folder / JOB_JSON, fmt, UNREADABLE)
        except Exception as e:  # noqa: BLE001 (RecordError, or a folder the process cannot read: removed)
            entries.append(JournalEntry(folder, None, str(e)))
            continue
        if job.id != folder.name:
            entries.append(JournalEntry(folder, None, f"its journal names job {job.id}"))
            continue
        entries.append(JournalEntry(folder, job, None))
    return sorted(entries, key=lambda e: e.job.created if e.job else 0.0)
