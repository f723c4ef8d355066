"""When a failed task is worth another try."""

from __future__ import annotations

from distilflow.errors import DistilflowError


def not_bad_input(task, task_run, state) -> bool:
    """Retry condition: bad input (a DistilflowError) fails at once, anything else may be retried."""
    try:
        state.result()
    except DistilflowError as error:
        return error.retryable
    except Exception:
        return True
    return False
