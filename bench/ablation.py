"""Which objective makes the best student: the same data, steps and schedule (params.yaml) for every
variant, differing only in the objective, the initialisation or the DistilBERT settings; each student
then fine-tuned on GLUE against the teacher (cached), with the same settings.

    python bench/ablation.py [--set key=value ...] [--only NAME ...]
    python bench/ablation.py --full 1000 --only "triple" --only "+ task"    # the retention figure
    python bench/ablation.py --full 1000 --only "encoder"                   # docs/results.md §10
    python bench/ablation.py --full 1000 --only "0 steps"                   # docs/results.md §11

`--full STEPS` is the retention run of docs/results.md: each variant distilled for STEPS optimizer steps
(1,000 x 32 sequences is one pass over the offline corpus) and fine-tuned on the full training sets of
RTE, MRPC, STS-B and CoLA; the teacher baselines for it are recorded in paths.glue_baselines.

Resumable: a variant whose student and GLUE report exist for the same settings is not redone, so an
interrupted ablation continues where it stopped; variants that differ only in `glue.*` settings (task
distillation) share one distilled student. Prints, and writes to artifacts/ablation/table.md, a
markdown table: GLUE score, retention, held-out MLM figures, MLflow run of each variant.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
from pathlib import Path

import yaml

INTERMEDIATE = ["distill.loss.alpha_hidden=1", "distill.loss.alpha_attention=1", "distill.loss.alpha_relation=1"]
OWN_TEACHER = "paths.teacher=<variant>/teacher"  # the teacher stage runs for this variant, into its folder
TASK_DISTILLATION = ["glue.distillation.weight=0.5", "glue.distillation.temperature=2"]
VARIANTS = {  # in order of what the comparison needs most (an interrupted run has the first ones)
    "triple loss (teacher init, 5·KD + 2·MLM + 1·cos)": [],
    "+ hidden MSE, attention KL, Q/K/V relations (1 each)": INTERMEDIATE,
    "+ task-specific distillation in GLUE (soft-target weight 0.5, T 2)": TASK_DISTILLATION,
    "MLM only (teacher init, hard labels)": ["distill.loss.alpha_ce=0", "distill.loss.alpha_cos=0",
                                             "distill.loss.alpha_mlm=1"],
    "random init (triple loss)": ["student.init=random"],
    # What distilling adds at all: the chosen teacher layers as they are (docs/results.md §11).
    "0 steps (teacher layers copied, nothing distilled)": ["distill.train.max_steps=0"],
    "DistilBERT settings (KD on all tokens, spread layers, β₂ 0.98)": [
        "distill.loss.kd_positions=all", "student.layers=spread", "distill.train.adam_betas=[0.9,0.98]"],
    # The teacher as it is, no MLM head trained: only terms inside the encoder, and the student's own MLM loss.
    "head-less teacher, no head trained (cos + hidden + attention + relations + MLM)": [
        "distill.loss.alpha_ce=0", *INTERMEDIATE, OWN_TEACHER],
    # The same, with the student's MLM loss turned down or off: the student copies the sentence encoder
    # itself, not the corpus (docs/results.md §10: worse on GLUE, STS-B above all).
    "encoder terms, 0.1·MLM, teacher as it is (+ task distillation)": [
        "distill.loss.alpha_ce=0", "distill.loss.alpha_mlm=0.1", *INTERMEDIATE, OWN_TEACHER, *TASK_DISTILLATION],
    "encoder terms only, teacher as it is (+ task distillation)": [
        "distill.loss.alpha_ce=0", "distill.loss.alpha_mlm=0", *INTERMEDIATE, OWN_TEACHER, *TASK_DISTILLATION],
}
FULL_GLUE = ["glue.max_train_examples=null", "glue.tasks=[rte,mrpc,stsb,cola]"]
OUTPUT = Path("artifacts/ablation")
PARAMS = yaml.safe_load(Path("params.yaml").read_text())
TEACHER = PARAMS["teacher"]["model"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="extra", action="append", default=[], help="override for every variant")
    parser.add_argument("--only", action="append", help="run only the variants whose name starts with this")
    parser.add_argument("--full", type=int, metavar="STEPS",
                        help="distil for STEPS steps and fine-tune on the full GLUE training sets (the retention run)")
    args = parser.parse_args()
    # Later wins: a variant's own settings over --full's (the 0-step variant keeps 0 steps), --set over both.
    full = [f"distill.train.max_steps={args.full}", *FULL_GLUE] if args.full else []
    extra = [*full, *args.extra]
    rows = []
    for name, overrides in VARIANTS.items():
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        rows.append((name, *run_variant(name, [*full, *overrides, *args.extra])))
    table = render(rows, extra)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "table.md").write_text(table)
    print(table)


def run_variant(name: str, overrides: list[str]) -> tuple[dict, dict]:
    done = OUTPUT / "done" / f"{_key(overrides)}.json"
    if done.is_file():  # same overrides, already distilled and evaluated
        print(f"= {name}: done before ({done})", flush=True)
        saved = json.loads(done.read_text())
        return saved["student"], saved["glue"]
    distill_overrides = [override for override in overrides if not override.startswith("glue.")]
    folder = OUTPUT / _key(distill_overrides)
    overrides = [override.replace("<variant>", str(folder)) for override in overrides]
    # One GLUE folder for all variants: its cache holds the teacher baseline, fine-tuned once.
    # metrics too: a variant's distill.json must not replace the pipeline's (metrics/, tracked by DVC)
    paths = [f"paths.student={folder / 'student'}", f"paths.checkpoints={folder / 'checkpoints'}",
             f"paths.glue={OUTPUT / 'glue'}", f"paths.metrics={folder / 'metrics'}"]
    sets = [arg for override in [*overrides, *paths] for arg in ("--set", override)]
    if not (folder / "student" / "distilflow.json").is_file():
        if OWN_TEACHER in distill_overrides:
            _run(["distilflow", "teacher", "--resume", "--discard-stale", *sets])
        _run(["distilflow", "distill", "--resume", "--discard-stale", *sets])
    # The baseline is the teacher as users have it (teacher.model), as in the pipeline's report.
    _run(["distilflow", "glue", "--model", str(folder / "student"), "--teacher", TEACHER, *sets])
    student = json.loads((folder / "student" / "distilflow.json").read_text())
    student["teacher_head_untrained"] = _teacher_head_untrained(folder if OWN_TEACHER in distill_overrides else None)
    glue = json.loads((OUTPUT / "glue" / "by_hand" / "glue.json").read_text())
    done.parent.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps({"name": name, "overrides": overrides, "student": student, "glue": glue}, indent=2))
    return student, glue


def _teacher_head_untrained(variant_folder: Path | None) -> bool:
    """Agreement with an untrained head (two random heads agreeing) means nothing: the table shows "–"."""
    teacher = variant_folder / "teacher" if variant_folder else Path(PARAMS["paths"]["teacher"])
    return json.loads((teacher / "distilflow.json").read_text()).get("head_untrained", False)


def _key(overrides: list[str]) -> str:
    return hashlib.sha256(json.dumps([overrides, TEACHER]).encode()).hexdigest()[:10]


def _run(command: list[str]) -> None:
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def render(rows: list[tuple[str, dict, dict]], extra: list[str]) -> str:
    tasks = rows[0][2]["tasks"] if rows else []
    lines = [f"Settings: params.yaml{' with ' + ', '.join(extra) if extra else ''}; GLUE tasks {', '.join(tasks)}.", "",
             "| student | GLUE score | retention | " + " | ".join(tasks) +
             " | test MLM loss | test MLM acc. | agreement with teacher | MLflow run |",
             "|---" * (7 + len(tasks)) + "|"]
    for name, student, glue in rows:
        scores = glue["models"]["student"]["scores"]
        metrics = student["metrics"]
        retention = glue.get("glue_retention")
        agreement = "–" if student.get("teacher_head_untrained") else f"{metrics['test_teacher_agreement']:.3f}"
        lines.append(f"| {name} | {100 * glue['models']['student']['glue_score']:.1f} | "
                     f"{'–' if retention is None else f'{100 * retention:.1f}%'} | "
                     + " | ".join(f"{100 * scores[task]:.1f}" for task in tasks)
                     + f" | {metrics['test_mlm_loss']:.3f} | {metrics['test_mlm_accuracy']:.3f} | "
                       f"{agreement} | `{student['mlflow_run_id']}` |")
    if rows:
        teacher = rows[0][2]["models"].get("teacher")
        if teacher:
            lines.append(f"| teacher (baseline) | {100 * teacher['glue_score']:.1f} | | "
                         + " | ".join(f"{100 * teacher['scores'][task]:.1f}" for task in tasks) + " | | | | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
