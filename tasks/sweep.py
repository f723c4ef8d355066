"""A sweep's steps as Prefect tasks (distilflow/jobs/sweep.py does the work): open its runs, one task per variant
(each a DVC experiment in its own process), collect, choose, register and report."""

from __future__ import annotations

from prefect import get_run_logger, task

from distilflow.config.sweep import SweepSpec
from distilflow.jobs import sweep
from distilflow.steps.sweep_plan import SweepResult, Variant


@task(name="open sweep")
def start(spec: SweepSpec) -> SweepResult:
    result = sweep.start(spec)
    get_run_logger().info("sweep %s: %d variants (MLflow run %s)", result.name, len(result.variants),
                          result.parent_run_id)
    return result


@task(name="variant", task_run_name="{variant.name}")
def run_variant(spec: SweepSpec, variant: Variant) -> Variant:
    return sweep.run_variant(spec, variant)


@task(name="collect results")
def collect(spec: SweepSpec, variants: list[Variant]) -> list[Variant]:
    sweep.collect(spec, variants)
    return variants


@task(name="choose winners")
def choose(spec: SweepSpec, result: SweepResult) -> list[Variant]:
    finals = sweep.choose(spec, result)
    get_run_logger().info("winners: %s", result.winners)
    return finals


@task(name="register and report")
def finish(spec: SweepSpec, result: SweepResult) -> SweepResult:
    result = sweep.finish(spec, result)
    get_run_logger().info(sweep.summary(result))
    return result
