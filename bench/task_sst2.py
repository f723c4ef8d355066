"""Your own task, measured (issue 44, item 7; README "Your own task"): SST-2 given as a user's data, not through the
GLUE table, distilled with `distilflow task`.

    python bench/task_sst2.py prepare     # artifacts/sst2-user/{train,dev}.csv (string labels) and the teacher:
                                          # data/teacher fine-tuned on the training rows, saved as a plain folder
    distilflow task params/tasks/sst2.yaml   # the product: soft targets, students over seeds, ONNX, registry
    python bench/task_sst2.py collect     # its report -> bench/results/task/sst2.json (with provenance)

`prepare` fine-tunes the teacher the way distilflow fine-tunes GLUE teachers (evaluation/finetune.py: one epoch,
learning rate 1e-4, seed 0, its labels named), resumable from its checkpoints; `--rows N` keeps the first N rows
of each split (a quick try). Everything it writes is under artifacts/sst2-user/.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time

from provenance import ROOT, now, provenance

sys.path.insert(0, str(ROOT))
from distilflow.config import GlueConfig  # noqa: E402
from distilflow.evaluation.finetune import finetune_and_evaluate  # noqa: E402
from distilflow.evaluation.glue_data import TASKS, read_release_tsv  # noqa: E402

SOURCE = ROOT.parent / "shared" / "data" / "glue" / "SST-2"
FOLDER = ROOT / "artifacts" / "sst2-user"
LABELS = ("negative", "positive")  # SST-2's 0 and 1
REPORT = ROOT / "artifacts" / "tasks" / "sst2" / "report.json"
RESULT = ROOT / "bench" / "results" / "task" / "sst2.json"
TEACHER_RECIPE = GlueConfig(epochs=1, learning_rates=[1e-4], batch_size=32, max_seq_length=64, seeds=[0],
                            max_train_examples=None)


def prepare(rows: int | None) -> None:
    task = dataclasses.replace(TASKS["sst2"], label_names=LABELS)  # the teacher's config names its labels
    splits = {}
    for split in ("train", "dev"):
        data = read_release_tsv(TASKS["sst2"], SOURCE / f"{split}.tsv")  # its 0/1 labels
        splits[split] = data.select(range(min(rows, len(data)))) if rows else data
        FOLDER.mkdir(parents=True, exist_ok=True)
        with open(FOLDER / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "sentiment"])
            writer.writerows((row["sentence"], LABELS[row["label"]]) for row in splits[split])
    teacher = FOLDER / "teacher"
    if (teacher / "config.json").is_file():
        print(f"{teacher}: there already")
        return
    started = time.time()
    outcome = finetune_and_evaluate(str(ROOT / "data" / "teacher"), task, {"train": splits["train"], "": splits["dev"]},
                                    TEACHER_RECIPE, seed=0, learning_rate=TEACHER_RECIPE.learning_rates[0],
                                    save_to=teacher, checkpoints=FOLDER / "teacher-checkpoints")
    print(f"teacher fine-tuned in {time.time() - started:.0f} s: dev {outcome.metrics['']}")


def collect() -> None:
    report = json.loads(REPORT.read_text())
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({**provenance(), "collected": now(), "command": "distilflow task params/tasks/sst2.yaml",
                                  "teacher_recipe": TEACHER_RECIPE.model_dump(mode="json"), "report": report},
                                 indent=2) + "\n")
    print(f"wrote {RESULT.relative_to(ROOT)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare").add_argument("--rows", type=int, default=None)
    commands.add_parser("collect")
    args = parser.parse_args()
    if args.command == "prepare":
        prepare(args.rows)
    else:
        collect()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
