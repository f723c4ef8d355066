"""The GLUE report: scores per task and model, GLUE score, retention (student / teacher), size and
speed; one typed model read by the report stage, the registry's tags and the `models` table.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from pydantic import BaseModel

from distilflow.config import Params
from distilflow.ops.files import write_text

BASELINE_ROLE = "teacher"  # the model the others are compared with (retention, speed-up)
MARKDOWN_FILE, CHART_FILE = "glue_report.md", "glue_scores.png"  # in paths.glue


class TaskResult(BaseModel):
    task: str
    metrics: dict[str, dict[str, float]]  # evaluation ('' or 'm'/'mm') -> metric -> median over seeds
    score: float  # the task's GLUE number (mean of its metrics), at the selected learning rate
    learning_rate: float
    runs: list[dict] = []  # every (lr, seed) with its metrics

    def flat_metrics(self) -> dict[str, float]:
        """Metric names as GLUE reports them: mrpc_f1, mnli_m_accuracy, stsb_pearson, ..."""
        flat = {}
        for evaluation, metrics in self.metrics.items():
            prefix = f"{self.task}_{evaluation}_" if evaluation else f"{self.task}_"
            flat.update({prefix + name: value for name, value in metrics.items()})
        return flat


# The settings that make two GLUE scores comparable (the promotion rule checks them).
COMPARABLE_SETTINGS = ("seeds", "max_train_examples", "learning_rates", "epochs", "max_seq_length", "batch_size",
                       "warmup_fraction", "weight_decay")


class ModelScores(BaseModel):
    source: str
    fingerprint: str
    scores: dict[str, float]  # task -> the task's GLUE number
    metrics: dict[str, dict[str, float]]  # task -> official metric names (mrpc_f1, ...) -> value
    glue_score: float
    speed: dict[str, float]  # parameters, size_mb, latency_ms_<device>_b<batch>


class GlueReport(BaseModel):
    tasks: list[str]
    settings: dict
    models: dict[str, ModelScores]  # "student" and "teacher" (or "model" alone)
    # student / teacher; None where the teacher's score is not positive (e.g. a CoLA MCC of 0)
    retention: dict[str, float | None] = {}
    glue_retention: float | None = None
    speedup: dict[str, float] = {}
    parameter_ratio: float | None = None
    mlflow_run_id: str | None = None
    # how latency was measured: protocol, model (the bare encoder), threads, machine (speed.machine)
    timing: dict[str, str | int] = {}

    @property
    def student(self) -> ModelScores:
        return self.models.get("student") or self.models["model"]

    def comparable_settings(self) -> dict[str, str]:
        """What must match between two reports for their GLUE scores to be compared."""
        settings = {"tasks": ",".join(self.tasks)}
        settings.update({key: str(self.settings.get(key)) for key in COMPARABLE_SETTINGS})
        return settings

    def summary_metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow."""
        summary = {f"{role}_{name}": value for role, result in self.models.items() for name, value in result.speed.items()}
        summary.update({f"{role}_glue_score": result.glue_score for role, result in self.models.items()})
        summary.update({f"{role}_{task}_score": score for role, result in self.models.items()
                        for task, score in result.scores.items()})
        if self.glue_retention is not None:
            summary["glue_retention"] = self.glue_retention
        summary.update({f"{task}_retention": value for task, value in self.retention.items() if value is not None})
        summary.update({f"speedup_{key}": value for key, value in self.speedup.items()})
        return summary


def glue_score(scores: dict[str, float]) -> float:
    """Macro average over the tasks that were run (say which, next to it)."""
    return statistics.mean(scores.values())


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where that means nothing (a teacher score of 0 or below)."""
    return numerator / denominator if denominator > 0 else None


def build_report(settings: dict, results: dict[str, dict[str, TaskResult]], sources: dict[str, str],
                 fingerprints: dict[str, str], speeds: dict[str, dict[str, float]]) -> GlueReport:
    tasks = list(next(iter(results.values())))
    models = {}
    for role, by_task in results.items():
        scores = {task: result.score for task, result in by_task.items()}
        models[role] = ModelScores(source=sources[role], fingerprint=fingerprints[role], scores=scores,
                                   metrics={task: result.flat_metrics() for task, result in by_task.items()},
                                   glue_score=glue_score(scores), speed=speeds[role])
    report = GlueReport(tasks=tasks, settings=settings, models=models)
    if BASELINE_ROLE in models:
        student, teacher = models["student"], models[BASELINE_ROLE]
        report.retention = {task: ratio(student.scores[task], teacher.scores[task]) for task in tasks}
        report.glue_retention = ratio(student.glue_score, teacher.glue_score)
        report.speedup = {key.removeprefix("latency_ms_"): teacher.speed[key] / student.speed[key]
                          for key in student.speed if key.startswith("latency_ms_") and key in teacher.speed}
        report.parameter_ratio = student.speed["parameters"] / teacher.speed["parameters"]
    return report


def pipeline_models(params: Params) -> dict[str, str]:
    """role -> model in the pipeline's report: the student it made, and the teacher as users have it
    (teacher.model, not the copy with a trained head)."""
    return {"student": str(params.paths.student), BASELINE_ROLE: params.teacher.model}


def classifier_folder(glue_dir: Path, task: str) -> Path:
    """The student fine-tuned on `task` by its GLUE stage (first seed, selected lr), for the export."""
    return glue_dir / "classifiers" / task


def task_results_file(glue_dir: Path, task: str) -> Path:
    """Where the GLUE stage of `task` writes its results (dvc.yaml declares the same)."""
    return glue_dir / "tasks" / f"{task}.json"


def write_task_results(path: Path, results: dict[str, TaskResult]) -> None:
    write_text(path, json.dumps({role: result.model_dump() for role, result in results.items()}, indent=2))


def read_task_results(path: Path) -> dict[str, TaskResult]:
    return {role: TaskResult.model_validate(result) for role, result in json.loads(path.read_text()).items()}


def write_report(report: GlueReport, output: Path, metrics_file: Path) -> dict[str, Path]:
    """metrics JSON (DVC), markdown table and bar chart."""
    write_text(metrics_file, report.model_dump_json(indent=2))
    markdown = write_text(output / MARKDOWN_FILE, render_markdown(report))
    chart = output / CHART_FILE
    plot_scores(report, chart)
    return {"metrics": metrics_file, "markdown": markdown, "chart": chart}


def read_report(metrics_file: Path) -> GlueReport:
    return GlueReport.model_validate_json(metrics_file.read_text())


def render_markdown(report: GlueReport) -> str:
    models = report.models
    names = list(models)
    tasks = report.tasks
    with_retention = BASELINE_ROLE in models
    lines = [f"# GLUE dev results ({', '.join(tasks)})", "",
             f"Tasks covered: {', '.join(tasks)} ({len(tasks)} of 9). Medians over seeds {report.settings['seeds']}; "
             "scores ×100.", *_scale_note(report.settings), ""]
    lines += ["| task | " + " | ".join(names) + (" | retention |" if with_retention else " |"),
              "|---" * (len(names) + 1 + with_retention) + "|"]
    for task in tasks:
        cells = [f"{100 * models[name].scores[task]:.1f}" for name in names]
        if with_retention:
            cells.append(_percent(report.retention.get(task)))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    cells = [f"**{100 * models[name].glue_score:.1f}**" for name in names]
    if with_retention:
        cells.append(f"**{_percent(report.glue_retention)}**")
    lines.append("| GLUE score | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in models[names[0]].speed:
        lines.append(f"| {key} | " + " | ".join(_number(models[name].speed.get(key)) for name in names) + " |")
    if report.timing:
        timing = report.timing
        lines += ["", f"Latency of the {timing.get('model', 'model')} (no head), ms: median and interquartile range "
                      f"(iqr) of interleaved repeats (protocol {timing.get('protocol')}), {timing.get('threads')} "
                      f"threads on {timing.get('machine')}."]
    if report.speedup:
        lines += ["", "Speed-up of the student over the teacher (latency ratio): "
                  + ", ".join(f"{k}: {v:.2f}×" for k, v in report.speedup.items())]
    if with_retention and None in (*report.retention.values(), report.glue_retention):
        lines += ["", "Retention is shown as – where the teacher's score is 0 or below (a ratio would mean nothing)."]
    lines += ["", "Per-task metrics:", ""]
    for name in names:
        for task, metrics in models[name].metrics.items():
            lines.append(f"- {name} {task}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in metrics.items()))
    return "\n".join(lines) + "\n"


def _scale_note(settings: dict) -> list[str]:
    """A capped run says so: its scores are not those of full-data GLUE fine-tuning."""
    cap = settings.get("max_train_examples")
    if cap is None:
        return []
    return ["", f"Quick scale: each training set capped at {cap:,} examples, {settings.get('epochs')} epoch(s). "
                "These scores check the pipeline; they are not full-data GLUE. The headline recipe is "
                "params/headline.yaml (docs/results.md §12)."]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def plot_scores(report: GlueReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = report.tasks + ["GLUE"]
    width = 0.8 / len(report.models)
    figure, axis = plt.subplots(figsize=(1.4 * len(labels) + 2, 4))
    for index, (name, result) in enumerate(report.models.items()):
        values = [100 * result.scores[task] for task in report.tasks] + [100 * result.glue_score]
        axis.bar([i + index * width for i in range(len(labels))], values, width, label=name)
    axis.set_xticks([i + width * (len(report.models) - 1) / 2 for i in range(len(labels))], labels)
    axis.set_ylabel("dev score ×100")
    axis.set_title("GLUE dev (median over seeds)")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
