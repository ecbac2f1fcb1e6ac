"""The one exception type that reaches users: a one-line message naming the problem and the fix."""


class MemeError(Exception):
    """Bad input or an unusable file. The CLI prints the message on one line and exits with code 2."""
