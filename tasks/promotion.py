"""The registry steps after the stages: register the student as `challenger`, then apply the
promotion rule (jobs/register.py, jobs/promote.py)."""

from __future__ import annotations

from prefect import get_run_logger, task

from distilflow.config import Params
from distilflow.jobs import promote, register
from distilflow.ops.registry import Decision
from tasks.run_records import tag_run


@task(name="register student")
def register_student(params: Params, run_id: str, experiment: str | None = None) -> tuple[str, bool]:
    registration = register.run(params, run_id, experiment)
    tag_run(params, run_id, {"registered_version": registration.version, "registered_new": str(registration.created),
                             **{f"dvc_{k}_artifact": v for k, v in registration.output_hashes.items()}})
    get_run_logger().info("%s version %s (%s)", params.registry.model_name, registration.version,
                          "new challenger" if registration.created else "already registered, nothing new")
    return registration.version, registration.created


@task(name="promote by rule")
def promote_by_rule(params: Params, version: str) -> Decision:
    decision = promote.by_rule(params, version)
    get_run_logger().info("version %s %s: %s", version, "promoted to champion" if decision.promote else "not promoted",
                          decision.reason)
    return decision
