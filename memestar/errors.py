"""The exceptions that reach users: a one-line message naming the problem and the fix."""

import re

# an absolute path of two or more parts, not inside a word or a URL (a route of one part, "GET /memes", is kept)
ABSOLUTE_PATH = re.compile(r"(?<![\w/.:~-])/(?:[^\s/'\"()]+/)+[^\s/'\"(),:;]*")


def one_line(text) -> str:
    """`text` with its line breaks and runs of spaces folded into single spaces: how every error is shown."""
    return " ".join(str(text).split())


def without_paths(text: str) -> str:
    """`text` with each absolute path cut to its last part: what a server tells a client names the input, never
    the server's file system ("/srv/memes/.jobs/3f.../clip.mp4 is damaged" -> "clip.mp4 is damaged")."""
    return ABSOLUTE_PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


class MemeError(Exception):
    """Bad input or an unusable file. The CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 2


class ScheduleError(MemeError, ValueError):
    """A sampler cannot run as asked: a step count out of its range, or a base's noise schedule it does not
    support. A ValueError too, as it is to the schedulers' own callers."""


class TrainingFailed(MemeError):
    """The run itself went wrong (a NaN loss, say); the last good checkpoint is kept."""

    exit_code = 1


class ExportFailed(MemeError):
    """An export that ran but came out wrong (over its self-check tolerance); the previous export is kept."""

    exit_code = 1


class Interrupted(MemeError):
    """Ctrl-C: the work stopped cleanly (a resumable checkpoint was written where there is one)."""

    exit_code = 130
