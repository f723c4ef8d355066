"""Where the command's messages go: every distilflow module logs through `logging.getLogger(__name__)`, and
the command line shows them on stderr, one line each (rich), drawn above any live progress bar instead of
over it. `--verbose` adds the debug lines, `--quiet` keeps warnings and errors; the stages a pipeline runs
in their own processes inherit the choice (DISTILFLOW_LOG_LEVEL). A program that imports distilflow
routes or silences them as it likes (the `distilflow` logger); Prefect's flow runs show them in its UI
(PREFECT_LOGGING_EXTRA_LOGGERS, set by the pipeline commands)."""

from __future__ import annotations

import logging
import os
import sys

LEVEL_ENV = "DISTILFLOW_LOG_LEVEL"
PACKAGE = "distilflow"
# Libraries whose INFO lines (tables created, system metrics started) would bury ours
CHATTY = ("mlflow", "alembic", "httpx")


def level_from(verbose: bool, quiet: bool) -> int:
    if verbose:
        return logging.DEBUG
    if quiet:
        return logging.WARNING
    return logging.getLevelNamesMapping().get(os.environ.get(LEVEL_ENV, ""), logging.INFO)


def setup_logging(level: int) -> None:
    """distilflow's loggers to stderr at `level`, for this process and the stage processes it starts."""
    from rich.console import Console
    from rich.logging import RichHandler

    class AboveProgressBars(RichHandler):
        def emit(self, record: logging.LogRecord) -> None:
            from tqdm import tqdm

            with tqdm.external_write_mode(file=sys.stderr):
                super().emit(record)

    handler = AboveProgressBars(console=Console(stderr=True, soft_wrap=True), show_time=False, show_path=False,
                                markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    package = logging.getLogger(PACKAGE)
    package.handlers = [h for h in package.handlers if not isinstance(h, RichHandler)] + [handler]
    package.setLevel(level)
    package.propagate = False  # shown here once, not again by a handler on the root logger (Prefect's console)
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    os.environ[LEVEL_ENV] = logging.getLevelName(level)
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", PACKAGE)
