"""The promotion rule, on a registered version's tags: a latency budget, a retention floor, and beating the
champion on comparable GLUE settings. The tags carry everything it reads (version_tags)."""

from __future__ import annotations

from dataclasses import dataclass

from distilflow.config import PromotionConfig
from distilflow.evaluation.glue_results import GlueReport


@dataclass
class Decision:
    promote: bool
    reason: str


def decide(policy: PromotionConfig, challenger: dict[str, str], champion: dict[str, str] | None) -> Decision:
    """The promotion rule on version tags: latency budget, retention floor, and beating the champion."""
    latency_key = f"latency_ms_{policy.latency}"
    if policy.max_latency_ms is not None:
        if latency_key not in challenger:
            return Decision(False, f"no measured {latency_key} to check against the latency budget")
        if float(challenger[latency_key]) > policy.max_latency_ms:
            return Decision(False, f"{latency_key} {float(challenger[latency_key]):.1f} ms > budget {policy.max_latency_ms} ms")
    score, retention, what = scored_by(challenger)
    if retention not in challenger:
        if policy.min_retention > 0:
            return Decision(False, f"no {what} retention (the teacher's {what} score is 0 or below): the retention "
                                   "floor cannot be checked, promote by hand")
    elif float(challenger[retention]) < policy.min_retention:
        return Decision(False, f"{what} retention {float(challenger[retention]):.3f} < {policy.min_retention}")
    if champion is None:
        return Decision(True, "first version that meets the rule")
    differing = [key for key in comparable_tags(challenger) | comparable_tags(champion)
                 if challenger.get(key) != champion.get(key)]
    if differing:
        what_differs = "; ".join(f"{key} {challenger.get(key)} vs {champion.get(key)}" for key in sorted(differing))
        return Decision(False, f"{what}, latency or shape settings differ from the champion's ({what_differs}): "
                               "figures are not comparable, promote by hand")
    needed = float(champion[score]) + policy.min_glue_gain
    if float(challenger[score]) < needed:
        return Decision(False, f"{what} score {float(challenger[score]):.4f} < champion's "
                               f"{float(champion[score]):.4f} + margin {policy.min_glue_gain}")
    return Decision(True, f"{what} score {float(challenger[score]):.4f} >= champion's "
                          f"{float(champion[score]):.4f} + margin {policy.min_glue_gain}")


def scored_by(tags: dict[str, str]) -> tuple[str, str, str]:
    """(score tag, retention tag, what it is): a student of the pipeline is scored on GLUE, a task's student on
    its task's metrics (jobs/task.py), by the same rule."""
    if TASK_SCORE in tags:
        return TASK_SCORE, TASK_RETENTION, f"task {tags.get('task', '')}".strip()
    return "glue_score", "glue_retention", "GLUE"


TASK_SCORE, TASK_RETENTION = "task_score", "task_retention"
TASK_SETTING_TAG = "task_{}"  # a task's settings that make its scores comparable (metrics, data, recipe)


GLUE_SETTING_TAG = "glue_{}"  # one tag per setting that makes GLUE scores comparable


LATENCY_SETTING_TAGS = ("latency_protocol", "latency_model")  # latencies compare only when measured alike
SHAPE_TAG = "student_shape"  # layers x hidden: a student of another size answers another budget, a person chooses


def comparable_tags(tags: dict[str, str]) -> set[str]:
    scores = ("glue_score", "glue_retention", TASK_SCORE, TASK_RETENTION)
    settings = {key for key in tags if key.startswith(("glue_", "task_")) and key not in scores}
    return settings | set(LATENCY_SETTING_TAGS) | ({SHAPE_TAG} & set(tags))


def version_tags(report: GlueReport, data_hashes: dict[str, str]) -> dict[str, str]:
    """Tags for a new version: what the promotion rule and the `models` table read, and the data it used."""
    student = report.student
    tags = {"glue_score": f"{student.glue_score:.6f}"}
    tags.update({GLUE_SETTING_TAG.format(key): value for key, value in report.comparable_settings().items()})
    if report.glue_retention is not None:
        tags["glue_retention"] = f"{report.glue_retention:.6f}"
    tags.update({key: f"{value:.3f}" for key, value in student.speed.items() if key.startswith("latency_ms_")})
    if report.timing:  # which model and protocol those latencies measured, and where
        tags.update({"latency_protocol": str(report.timing["protocol"]), "latency_model": str(report.timing["model"]),
                     "latency_machine": f"{report.timing['machine']}, {report.timing['threads']} threads"})
    tags.update({f"dvc_{name}": value for name, value in data_hashes.items()})
    return tags
