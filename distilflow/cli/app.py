"""The `distilflow` app: shared options, reading params, and turning errors into one line."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from distilflow.base import stage_env
from distilflow.cli.logs import level_from, setup_logging
from distilflow.config import Params
from distilflow.config.load import load_params
from distilflow.errors import DistilflowError, first_line, is_disk_full

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Distil BERT-family masked-LM teachers into half-depth students.")

ParamsOption = Annotated[Path, typer.Option("--params", "-p", help="params file")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override, e.g. distill.loss.temperature=4")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="continue from the latest checkpoint")]
RestartOption = Annotated[bool, typer.Option("--restart", help="discard existing checkpoints and start over")]
DiscardStaleOption = Annotated[bool, typer.Option(
    "--discard-stale", help="with --resume: drop checkpoints made with other params or data instead of stopping")]


@app.callback()
def messages(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show debug messages too")] = False,
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="show only warnings and errors")] = False) -> None:
    """Distil BERT-family masked-LM teachers into smaller students."""
    setup_logging(level_from(verbose, quiet))


def read_params(path: Path, overrides: list[str] | None) -> Params:
    return load_params(path, overrides or [])


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a container stopping): handled as Ctrl-C is, what was written kept."""


_signalled: list[int] = []  # typer may turn the interruption into an exit code: the signal is noted here too


def _terminate(signum, frame) -> None:
    _signalled.append(signum)
    raise Terminated


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _main()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main() -> None:
    try:
        # standalone_mode=False: our errors and Ctrl-C reach the handlers below instead of click's.
        result = typer.main.get_command(app).main(standalone_mode=False)
    except DistilflowError as error:
        close_progress_bars()
        typer.secho(f"error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(stage_env.EXIT_BAD_INPUT)
    except typer.TyperException as error:  # usage errors (typer 0.29 vendors its own click): one line too
        context = getattr(error, "ctx", None)
        command = context.command_path if context is not None else "distilflow"
        message = error.format_message() if hasattr(error, "format_message") else str(error)
        typer.secho(f"error: {message.rstrip('.')}: see `{command} --help`", err=True, fg=typer.colors.RED)
        sys.exit(getattr(error, "exit_code", stage_env.EXIT_BAD_INPUT))
    except (KeyboardInterrupt, typer.Abort) as interruption:
        close_progress_bars()
        typer.secho("\n" + interrupted_hint(sys.argv[1:]), err=True, fg=typer.colors.YELLOW)
        sys.exit(TERMINATED if _terminated(interruption) else INTERRUPTED)
    except Exception as error:
        close_progress_bars()
        if is_disk_full(error):  # saving a model, an export, a dataset: what was there before is kept
            typer.secho(f"error: no space left on device ({type(error).__name__}: {first_line(error)[:160]}): free "
                        f"some space, then {resume_command(sys.argv[1:])}; nothing it was writing replaced what "
                        "was there", err=True, fg=typer.colors.RED)
            sys.exit(stage_env.EXIT_BAD_INPUT)
        if _is_mlflow_error(error):  # the store failed mid-run (a server went away, a disk filled up)
            typer.secho(f"error: MLflow failed ({type(error).__name__}: {first_line(error)[:200]}): check the "
                        "tracking store (tracking.tracking_uri or $MLFLOW_TRACKING_URI), then run the same command "
                        "again (with --resume where training had started)", err=True, fg=typer.colors.RED)
            sys.exit(stage_env.EXIT_BAD_INPUT)
        if not _is_cuda_out_of_memory(error):
            raise
        # One line the orchestrator recognises; it retries with half the micro-batch (stage_env.BATCH_SPLIT_ENV).
        typer.secho(f"{stage_env.OUT_OF_MEMORY_MARKER}: lower the micro_batch_size (and raise "
                    "gradient_accumulation_steps), then run again with --resume", err=True, fg=typer.colors.RED)
        sys.exit(stage_env.EXIT_OUT_OF_MEMORY)
    if result == INTERRUPTED:  # typer turns Ctrl-C into this exit code, returned when not standalone
        close_progress_bars()
        typer.secho("\n" + interrupted_hint(sys.argv[1:]), err=True, fg=typer.colors.YELLOW)
        result = TERMINATED if _terminated() else INTERRUPTED
    sys.exit(result if isinstance(result, int) else 0)


INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
TERMINATED = 143  # 128 + SIGTERM
RESUMABLE = ("teacher", "distill")  # the commands that checkpoint and take --resume


def resume_command(argv: list[str]) -> str:
    """How to continue: the same command, with --resume where it checkpoints."""
    if argv and argv[0] in RESUMABLE:
        kept = [arg for arg in argv if arg not in ("--resume", "--restart")]
        return f"continue with `distilflow {shlex.join(kept)} --resume`"
    return f"run `distilflow {shlex.join(argv)}` again"


def interrupted_hint(argv: list[str]) -> str:
    if argv and argv[0] in RESUMABLE:
        return f"interrupted: the checkpoints written so far are kept; {resume_command(argv)}"
    return f"interrupted: nothing it was writing replaced what was there; {resume_command(argv)}"


def _terminated(interruption: BaseException | None = None) -> bool:
    """Whether it was SIGTERM, also where click turned it into its Abort or typer into an exit code."""
    if _signalled:
        return True
    while interruption is not None:
        if isinstance(interruption, Terminated):
            return True
        interruption = interruption.__cause__ or interruption.__context__
    return False


def close_progress_bars() -> None:
    """A message printed while a bar is live would be drawn over by it: each bar is ended on its own line first."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _is_cuda_out_of_memory(error: Exception) -> bool:
    import torch

    return isinstance(error, torch.OutOfMemoryError)


def _is_mlflow_error(error: Exception) -> bool:
    if "mlflow" not in sys.modules:  # never imported: cannot be its error (and importing it is slow)
        return False
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException)
