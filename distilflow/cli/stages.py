"""The commands dvc.yaml's stages run: one per job module (distilflow/jobs/). Each imports its job
only when it runs, so that a stage executes no other job's code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Annotated

import typer

from distilflow.base import stage_env
from distilflow.cli.app import (
    DiscardStaleOption,
    ParamsOption,
    RestartOption,
    ResumeOption,
    SetOption,
    app,
    read_params,
)
from distilflow.config import Params
from distilflow.config.load import DEFAULT_PARAMS_PATH

PANEL = "Stages of dvc.yaml"


def _data_parallel_if_asked() -> None:
    """With $DISTILFLOW_TORCHRUN set, rerun this command under torchrun (after the params were checked)."""
    command = stage_env.torchrun_command(sys.argv[1:])
    if command:
        raise SystemExit(subprocess.run(command).returncode)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0  # torchrun's rank; a plain run is rank 0


@app.command(rich_help_panel=PANEL)
def prepare(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
            verify: Annotated[bool, typer.Option(
                "--verify", help="check every byte of paths.prepared against what prepare wrote, and change "
                                 "nothing (each load checks only sizes and file ends)")] = False) -> None:
    """Stage prepare: tokenize and pack the corpus into paths.prepared."""
    from distilflow.jobs import prepare as job

    if verify:
        typer.echo(job.verify(read_params(params, set_)))
        return
    prepared = job.run(read_params(params, set_))
    typer.echo(f"prepared {prepared.meta['sequences']} sequences -> {prepared.path} (fingerprint {prepared.fingerprint})")


@app.command(rich_help_panel=PANEL)
def teacher(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None, resume: ResumeOption = False,
            restart: RestartOption = False, discard_stale: DiscardStaleOption = False) -> None:
    """Stage teacher: the complete masked-LM teacher in paths.teacher (an MLM head trained if it lacks one)."""
    from distilflow.jobs import teacher as job
    from distilflow.train.resume import ResumePolicy

    config_ = read_params(params, set_)
    _data_parallel_if_asked()
    artifact = job.run(config_, ResumePolicy(resume, restart, discard_stale))
    if _is_main_process():
        typer.echo(f"teacher, {artifact.describe()}: {artifact.path} {json.dumps(artifact.metrics)}")


@app.command(rich_help_panel=PANEL)
def distill(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None, resume: ResumeOption = False,
            restart: RestartOption = False, discard_stale: DiscardStaleOption = False,
            with_inputs: Annotated[bool, typer.Option(
                "--with-inputs", help="first run prepare and teacher too (by hand; the pipeline leaves that to DVC)")] = False,
            ) -> None:
    """Stage distill: the student in paths.student, from paths.prepared and paths.teacher; tracked in MLflow."""
    from distilflow.jobs import distill as job
    from distilflow.train.resume import ResumePolicy

    config_ = read_params(params, set_)
    _data_parallel_if_asked()
    policy = ResumePolicy(resume, restart, discard_stale)
    if with_inputs:
        job.require_student_fits(config_, config_.teacher.model)  # seconds, not after prepare and teacher
        _prepare_and_teacher(config_, policy)
    result = job.run(config_, policy)
    if _is_main_process():
        tracked = f"MLflow run {result.run_id}" if result.run_id else "not tracked (tracking.enabled: false)"
        typer.echo(f"student saved to {result.student_path} (teacher layers {result.teacher_layers}); {tracked}")
        typer.echo(json.dumps(result.metrics, indent=2))


def _prepare_and_teacher(config_: Params, policy) -> None:
    from distilflow.jobs import prepare as prepare_job
    from distilflow.jobs import teacher as teacher_job
    from distilflow.train.distributed import process_group

    group = process_group()
    if group.is_main:  # one process tokenizes; the others wait and read it
        prepare_job.run(config_)
    group.barrier()
    teacher_job.run(config_, policy)


@app.command("glue-task", rich_help_panel=PANEL)
def glue_task(
    task: Annotated[str, typer.Argument(help="GLUE task name, e.g. rte")],
    params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None,
) -> None:
    """Stage glue@TASK: the student and the teacher baseline (cached) fine-tuned on one GLUE task."""
    from distilflow.jobs import glue_task as job

    results = job.run(read_params(params, set_), task)
    typer.echo(", ".join(f"{role} {task} {100 * result.score:.1f}" for role, result in results.items()))


@app.command("glue-report", rich_help_panel=PANEL)
def glue_report(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Stage glue_report: GLUE score, retention, size and speed of the student vs the teacher."""
    from distilflow.evaluation.report import MARKDOWN_FILE
    from distilflow.jobs import glue_report as job

    config_ = read_params(params, set_)
    job.run(config_)
    typer.echo((config_.paths.glue / MARKDOWN_FILE).read_text())


@app.command(rich_help_panel=PANEL)
def export(params: ParamsOption = DEFAULT_PARAMS_PATH, set_: SetOption = None) -> None:
    """Stage export (after the GLUE stages): the student and its GLUE classifiers as ONNX fp32 and int8 (paths.export), checked against PyTorch,
    scored on GLUE dev, sizes and CPU latency."""
    from distilflow.jobs import export as job

    result = job.run(read_params(params, set_))
    typer.echo((result.folder / "export.md").read_text())
