"""What a sweep says when it ends: a table of its variants (the settings that differ between them, the selection
and dev GLUE scores, retention, latency, size), which won and why, and where to compare them in MLflow."""

from __future__ import annotations

import csv
import io

from distilflow.evaluation.glue_results import GlueReport

SWEEP_TAG = "sweep"  # on the sweep's parent run and on each variant's run
COLUMNS = ("variant", "phase", "status", "settings", "selection GLUE", "dev GLUE", "retention", "latency ms b1",
           "parameters")


def ranking_metric(report: GlueReport | None, by: str) -> float | None:
    """What ranks a variant: the selection GLUE score of its student (or of its teacher, for a teacher's recipe)."""
    if report is None or by not in report.models:
        return None
    return report.models[by].selection_glue_score


def differing(variants) -> dict[str, list[str]]:
    """variant -> its overrides of the keys whose values are not the same in every variant."""
    values = [dict(o.split("=", 1) for o in v.overrides) for v in variants]
    keys = {k for entry in values for k in entry if len({entry.get(k) for entry in values}) > 1}
    return {v.name: [f"{k}={entry[k]}" for k in sorted(keys) if k in entry] for v, entry in zip(variants, values)}


def rows(variants) -> list[list[str]]:
    settings = differing(variants)
    out = []
    for v in variants:
        student = v.report.models.get("student") if v.report else None
        latency = student.speed.get("latency_ms_cpu_b1") if student else None
        out.append([v.name, v.phase, v.status if not v.reason else f"{v.status}: {v.reason}", " ".join(settings[v.name]),
                    _points(student.selection_glue_score if student else None), _points(student.glue_score if student else None),
                    _percent(v.report.glue_retention if v.report else None),
                    f"{latency:.1f}" if latency else "", f"{student.speed['parameters']:,.0f}" if student else ""])
    return out


def table(variants, csv: bool = False) -> str:
    if csv:
        return _csv(variants)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows(variants)])


def _csv(variants) -> str:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerows(rows(variants))
    return text.getvalue()


def describe(result, spec, parent_url: str) -> str:
    """The sweep's report: the decision first, then the table and how to compare the variants."""
    lines = [f"# Sweep {result.name}", ""]
    if result.winners:
        by = spec.select.by
        for group, name in result.winners.items():
            if spec.select.given:
                lines.append(f"- recipe{'' if group == 'all' else f' of {group}'}: **{name}**, given (select.given: "
                             "chosen before this sweep, not on its dev sets)")
                continue
            lines.append(f"- winner{'' if group == 'all' else f' of {group}'}: **{name}**, the best {by} GLUE score "
                         f"on the held-out selection slices (glue.selection.holdout={spec.select.holdout}); the dev "
                         "scores are reported, never used to choose")
    else:
        lines.append("- no variant finished: nothing to choose")
    if result.version:
        lines.append(f"- registered as version {result.version} (challenger); promotion: {result.decision}")
    lines += ["", table(result.variants), "",
              f"Compare them in MLflow: {parent_url} (its child runs; Compare, with the columns "
              "student_selection_glue_score, student_glue_score, glue_retention, student_latency_ms_cpu_b1).",
              "Any variant into the working tree: `dvc exp apply <sweep>-<variant>`, then `distilflow register`."]
    return "\n".join(lines) + "\n"


def _points(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _percent(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def summary(result) -> str:
    """What the command prints when the sweep ends: how many variants finished, which failed and why, the winners."""
    ran = [v for v in result.variants if v.status != "given"]
    done = [v for v in ran if v.status == "done"]
    failed = [f"{v.name} ({v.reason})" for v in ran if v.status == "failed"]
    lines = [f"sweep {result.name}: {len(done)} of {len(ran)} variants done"
             + (f"; failed: {'; '.join(failed)}" if failed else "")]
    lines += [f"winner{'' if group == 'all' else f' of {group}'}: {name}" for group, name in result.winners.items()]
    if result.version:
        lines.append(f"registered version {result.version} (challenger); promotion: {result.decision}")
    return "\n".join(lines)
