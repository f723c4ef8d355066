"""Data versions: pin the inputs with DVC before the stages, push everything to the DVC remote after."""

from __future__ import annotations

from prefect import get_run_logger, task

from distilflow.config import Params
from distilflow.ops import dvc, task_pins
from tasks.retries import not_bad_input
from tasks.run_records import tag_run


@task(name="pin data with DVC", retries=2, retry_delay_seconds=5, retry_condition_fn=not_bad_input)
def pin_data(params: Params, run_id: str) -> dict[str, str]:
    hashes = task_pins.pin_inputs(params)  # the stages' inputs, tasks' too
    tag_run(params, run_id, {f"dvc_{name}": value for name, value in hashes.items()})
    get_run_logger().info("data versions (DVC md5): %s", hashes)
    return hashes


@task(name="push to DVC remote", retries=2, retry_delay_seconds=10)
def push_data(params: Params) -> str:
    if not params.versioning.push:
        return "push disabled (versioning.push: false)"
    return dvc.push()
