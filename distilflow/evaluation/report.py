"""The GLUE report rendered: the Markdown table and the bar chart, beside the metrics JSON DVC reads."""

from __future__ import annotations

from pathlib import Path

from distilflow.base.files import write_text
from distilflow.evaluation.glue_results import BASELINE_ROLE, GlueReport

MARKDOWN_FILE, CHART_FILE = "glue_report.md", "glue_scores.png"  # in paths.glue


def write_report(report: GlueReport, output: Path, metrics_file: Path) -> dict[str, Path]:
    """metrics JSON (DVC), markdown table and bar chart."""
    write_text(metrics_file, report.model_dump_json(indent=2))
    markdown = write_text(output / MARKDOWN_FILE, render_markdown(report))
    chart = output / CHART_FILE
    plot_scores(report, chart)
    return {"metrics": metrics_file, "markdown": markdown, "chart": chart}


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
