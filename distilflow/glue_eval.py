"""GLUE evaluation of a model: every task fine-tuned over seeds (and a learning-rate grid), the
median reported, results cached per (model weights, task, settings), and the student-vs-teacher report.
"""

from __future__ import annotations

import json
import statistics
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers import AutoModel

from distilflow.config import GlueConfig, fingerprint
from distilflow.finetune import finetune_and_evaluate
from distilflow.glue import GlueTask, load_task, parse_task_list, task_available, task_score
from distilflow.sources import model_fingerprint, quiet_transformers, resolve

CACHE_VERSION = "glue-v1"


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, dict[str, float]]  # evaluation ('' or 'm'/'mm') -> metric -> median over seeds
    score: float  # the task's GLUE number (mean of its metrics), at the selected learning rate
    learning_rate: float
    runs: list[dict] = field(default_factory=list)  # every (lr, seed) with its metrics

    def flat_metrics(self) -> dict[str, float]:
        """Metric names as GLUE reports them: mrpc_f1, mnli_m_accuracy, stsb_pearson, ..."""
        flat = {}
        for evaluation, metrics in self.metrics.items():
            prefix = f"{self.task}_{evaluation}_" if evaluation else f"{self.task}_"
            flat.update({prefix + name: value for name, value in metrics.items()})
        return flat


def select_tasks(config: GlueConfig, requested: str | list[str] | None) -> list[GlueTask]:
    """The tasks to run: missing ones are an error when named, skipped with a warning under 'all'."""
    tasks, asked_for_all = parse_task_list(requested if requested is not None else config.tasks)
    asked_for_all = asked_for_all or len(tasks) == 9
    if not asked_for_all:
        return tasks
    available = [task for task in tasks if task_available(task, config.source)]
    for task in tasks:
        if task not in available:
            warnings.warn(f"GLUE task '{task.name}' is not in {config.source}: skipped", stacklevel=2)
    return available


def evaluate_task(model_name: str, model_key: str, task: GlueTask, config: GlueConfig, cache_dir: Path,
                  on_run=None) -> TaskResult:
    """Fine-tune over the lr grid x seeds; pick the lr with the best median dev score; cached."""
    settings = config.model_dump(mode="json", exclude={"tasks", "progress", "latency"})
    cache_file = cache_dir / f"{task.name}-{fingerprint(CACHE_VERSION, model_key, task.name, settings)}.json"
    if cache_file.is_file():
        return TaskResult(**json.loads(cache_file.read_text()))
    splits = load_task(task, config.source)
    if config.max_train_examples and len(splits["train"]) > config.max_train_examples:
        splits["train"] = splits["train"].shuffle(seed=0).select(range(config.max_train_examples))
    runs = []
    for learning_rate in config.learning_rates:
        for seed in config.seeds:
            metrics = finetune_and_evaluate(model_name, task, splits, config, seed, learning_rate)
            run = {"learning_rate": learning_rate, "seed": seed, "metrics": metrics,
                   "score": task_score(task, metrics)}
            runs.append(run)
            if on_run:
                on_run(task, run)
    result = summarize(task, runs)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(asdict(result), indent=2))
    return result


def summarize(task: GlueTask, runs: list[dict]) -> TaskResult:
    by_lr: dict[float, list[dict]] = {}
    for run in runs:
        by_lr.setdefault(run["learning_rate"], []).append(run)
    best_lr = max(by_lr, key=lambda lr: statistics.median(run["score"] for run in by_lr[lr]))
    chosen = by_lr[best_lr]
    medians = {
        evaluation: {name: statistics.median(run["metrics"][evaluation][name] for run in chosen)
                     for name in chosen[0]["metrics"][evaluation]}
        for evaluation in chosen[0]["metrics"]
    }
    return TaskResult(task.name, medians, task_score(task, medians), best_lr, runs)


def model_key(model_name: str) -> str:
    """Identity of a model for caching: its encoder weights, wherever it was loaded from."""
    with quiet_transformers():
        model, info = AutoModel.from_pretrained(resolve(model_name), output_loading_info=True)
    return model_fingerprint(model, exclude=set(info["missing_keys"]))


def retention(student: dict[str, float], teacher: dict[str, float]) -> dict[str, float]:
    return {task: student[task] / teacher[task] for task in student if task in teacher and teacher[task] != 0}


def write_report(report: dict, output: Path, metrics_file: Path) -> dict[str, Path]:
    """metrics JSON (DVC), markdown table and bar chart."""
    output.mkdir(parents=True, exist_ok=True)
    metrics_file.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text(json.dumps(report, indent=2))
    markdown = output / "glue_report.md"
    markdown.write_text(render_markdown(report))
    chart = output / "glue_scores.png"
    plot_scores(report, chart)
    return {"metrics": metrics_file, "markdown": markdown, "chart": chart}


def render_markdown(report: dict) -> str:
    models = report["models"]
    names = list(models)
    tasks = report["tasks"]
    lines = [f"# GLUE dev results ({', '.join(tasks)})", "",
             f"Tasks covered: {', '.join(tasks)} ({len(tasks)} of 9). Medians over seeds {report['settings']['seeds']}; "
             "scores ×100.", ""]
    header = "| task | " + " | ".join(names) + (" | retention |" if "retention" in report else " |")
    lines += [header, "|---" * (len(names) + 1 + ("retention" in report)) + "|"]
    for task in tasks:
        cells = [f"{100 * models[name]['scores'][task]:.1f}" for name in names]
        if "retention" in report:
            cells.append(f"{100 * report['retention'][task]:.1f}%")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    cells = [f"**{100 * models[name]['glue_score']:.1f}**" for name in names]
    if "retention" in report:
        cells.append(f"**{100 * report['glue_retention']:.1f}%**")
    lines.append("| GLUE score | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in models[names[0]]["speed"]:
        lines.append(f"| {key} | " + " | ".join(_fmt(models[name]["speed"].get(key)) for name in names) + " |")
    if "speedup" in report:
        lines += ["", "Speed-up of the student over the teacher (latency ratio): "
                  + ", ".join(f"{k}: {v:.2f}×" for k, v in report["speedup"].items())]
    lines += ["", "Per-task metrics:", ""]
    for name in names:
        for task, metrics in models[name]["metrics"].items():
            lines.append(f"- {name} {task}: " + ", ".join(f"{k} {100 * v:.1f}" for k, v in metrics.items()))
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def plot_scores(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = report["tasks"] + ["GLUE"]
    models = report["models"]
    width = 0.8 / len(models)
    figure, axis = plt.subplots(figsize=(1.4 * len(tasks) + 2, 4))
    for index, (name, result) in enumerate(models.items()):
        values = [100 * result["scores"][task] for task in report["tasks"]] + [100 * result["glue_score"]]
        axis.bar([i + index * width for i in range(len(tasks))], values, width, label=name)
    axis.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(tasks))], tasks)
    axis.set_ylabel("dev score ×100")
    axis.set_title("GLUE dev (median over seeds)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
