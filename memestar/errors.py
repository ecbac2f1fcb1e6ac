"""The exceptions that reach users: a one-line message naming the problem and the fix."""


def one_line(text) -> str:
    """`text` with its line breaks and runs of spaces folded into single spaces: how every error is shown."""
    return " ".join(str(text).split())


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
