"""The seed's claim, small: distillation beats MLM-only training and random initialisation.

Runs three students with the same data, steps and schedule (params.yaml), differing only in the
objective or the initialisation, then prints a markdown table of held-out (WikiText test) metrics.
    python bench/ablation.py [--set key=value ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VARIANTS = {
    "distilled (teacher init, 5·KD + 2·MLM + 1·cos)": [],
    "MLM only (teacher init, hard labels)": ["distill.loss.alpha_ce=0", "distill.loss.alpha_cos=0",
                                             "distill.loss.alpha_mlm=1"],
    "random init (5·KD + 2·MLM + 1·cos)": ["student.init=random"],
}
OUTPUT = Path("artifacts/ablation")


def main(extra: list[str]) -> None:
    rows = []
    for index, (name, overrides) in enumerate(VARIANTS.items()):
        folder = OUTPUT / f"variant{index}"
        sets = [*overrides, *extra, f"paths.student={folder / 'student'}", f"paths.checkpoints={folder / 'checkpoints'}"]
        command = ["distilflow", "distill", "--restart", *[arg for s in sets for arg in ("--set", s)]]
        print("$", " ".join(command), flush=True)
        subprocess.run(command, check=True)
        meta = json.loads((folder / "student" / "distilflow.json").read_text())
        rows.append((name, meta["metrics"], meta["mlflow_run_id"]))
    print("\n| student | test MLM loss | test MLM accuracy | top-1 agreement with teacher | MLflow run |")
    print("|---|---|---|---|---|")
    for name, metrics, run_id in rows:
        print(f"| {name} | {metrics['test_mlm_loss']:.3f} | {metrics['test_mlm_accuracy']:.3f} | "
              f"{metrics['test_teacher_agreement']:.3f} | `{run_id}` |")


if __name__ == "__main__":
    main([arg for arg in sys.argv[1:] if arg != "--set"])
