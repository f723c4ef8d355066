"""User-facing errors: each one is a single line that names the problem and the fix."""


class DistilflowError(Exception):
    """Bad input or state that the user can fix; the CLI prints it as one line, without a traceback."""

    retryable = False  # bad input fails the same way twice; subclasses for flaky I/O say otherwise


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (library errors can run to pages)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_disk_full(error: BaseException) -> bool:
    """ENOSPC anywhere in the error's chain, or the words writers put in its place (safetensors' Rust
    writer raises SafetensorError "No space left on device (os error 28)", not an OSError)."""
    cause: BaseException | None = error
    while cause is not None:
        if getattr(cause, "errno", None) == 28 or "No space left on device" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
