"""Prefect tasks for the distillation steps. Each wraps one core function and adds nothing else."""

from __future__ import annotations

from prefect import get_run_logger, task

from distilflow import pipeline
from distilflow.config import Params
from distilflow.prepare import PreparedData


@task(name="prepare corpus", retries=2, retry_delay_seconds=5)  # retries help with flaky I/O, not bad input
def prepare_corpus(params: Params) -> PreparedData:
    prepared = pipeline.prepare(params)
    get_run_logger().info("prepared %s (fingerprint %s)", prepared.meta["sequences"], prepared.fingerprint)
    return prepared


@task(name="teacher MLM head")
def teacher_head(params: Params, prepared: PreparedData, resume: bool = True) -> pipeline.TeacherArtifact:
    artifact = pipeline.teacher_with_head(params, prepared, resume=resume)
    get_run_logger().info("teacher %s (head trained here: %s)", artifact.path, artifact.head_trained)
    return artifact


@task(name="distill student")
def distill_student(params: Params, prepared: PreparedData, teacher: pipeline.TeacherArtifact,
                    resume: bool = True) -> pipeline.DistillResult:
    result = pipeline.distill_student(params, prepared, teacher, resume=resume)
    get_run_logger().info("student %s, MLflow run %s, %s", result.student_path, result.run_id, result.metrics)
    return result
