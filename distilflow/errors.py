"""User-facing errors: each one is a single line that names the problem and the fix."""


class DistilflowError(Exception):
    """Bad input or state that the user can fix; the CLI prints it as one line, without a traceback."""

    retryable = False  # bad input fails the same way twice; subclasses for flaky I/O say otherwise


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
