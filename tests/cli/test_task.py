"""`distilflow task NAME` end to end at tiny scale, as a user runs it (issue 44): the console script in a new
environment, a user's CSV with string labels and a saved teacher-classifier folder; the student registered as
distilflow-NAME answers a request through `mlflow models serve` with a label name and probabilities, and its int8
ONNX score is within export.max_int8_glue_drop of PyTorch's, as the report says."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification

from distilflow.ops.local_server import free_port, local_server, scoring_server_command
from tests.cli.test_app import _assert_one_line_error, _run
from tests.conftest import fresh_user_environment, tiny_bert_config

WORDS = {"good": ["great", "fine", "superb", "lovely", "charming"], "bad": ["dull", "awful", "boring", "tedious", "poor"]}


def _reviews(count: int, seed: int) -> pd.DataFrame:
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(count):
        mood = "good" if i % 2 else "bad"
        word = WORDS[mood][int(torch.randint(5, (1,), generator=generator))]
        rows.append({"review": f"the film was {word} and {word}", "verdict": "liked" if mood == "good" else "disliked"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def project(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("task_project")
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):  # a user's clone is both
        subprocess.run(command, cwd=root, check=True)
    _reviews(96, 1).to_csv(root / "train.csv", index=False)
    _reviews(32, 2).to_csv(root / "test.csv", index=False)
    torch.manual_seed(0)  # the user's fine-tuned teacher: a tiny classifier saved as a plain folder
    config = tiny_bert_config(len(tokenizer), layers=4)
    config.num_labels, config.id2label, config.label2id = 2, {0: "liked", 1: "disliked"}, {"liked": 0, "disliked": 1}
    BertForSequenceClassification(config).save_pretrained(root / "teacher")
    tokenizer.save_pretrained(root / "teacher")
    params = {
        "data": {"train": {"files": ["unused/*.txt"]}},
        "glue": {"epochs": 2, "batch_size": 16, "max_seq_length": 16, "learning_rates": [1e-3], "seeds": [1, 2],
                 "progress": False, "distillation": {"weight": 0.5, "temperature": 2.0}},
        "export": {"latency": {"batch_sizes": [1], "seq_length": 16, "repeats": 2}, "max_int8_glue_drop": 0.05},
        "registry": {"promotion": {"min_retention": 0.0}},
        "tasks": {"reviews": {"data": {"files": {"train": "train.csv", "report": "test.csv"}}, "text": ["review"],
                              "label": "verdict", "metrics": ["accuracy", "f1_macro"], "teacher_classifier": "teacher",
                              "selection": {"holdout": 0.25}}},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _distilflow(project: Path, home: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "distilflow"), *args], cwd=project, capture_output=True,
                          text=True, env=fresh_user_environment(home), timeout=600)


def test_a_users_task_is_distilled_exported_registered_and_served(project, tmp_path):
    done = _distilflow(project, tmp_path / "home", "task", "reviews")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distilflow-reviews version 1 (new, alias challenger; champion moved" in done.stdout

    report = json.loads((project / "metrics" / "tasks" / "reviews.json").read_text())
    pinned = project / "data" / "tasks" / "reviews"  # the data and teacher it read, pinned by DVC first
    assert set(report["pinned"]) == {"train", "report", "teacher"} and "pinned reviews.train: " in done.stdout
    assert report["pinned"]["train"] == yaml.safe_load((pinned / "train.csv.dvc").read_text())["outs"][0]["md5"]
    assert (pinned / "teacher" / "config.json").is_file() and (project / "train.csv").is_file()  # a copy: yours stays
    assert report["labels"] == ["liked", "disliked"]  # the teacher's order
    assert set(report["student"]["per_seed"]) == {"1", "2"} and report["served"] == "onnx_int8"
    export = report["export"]
    assert abs(export["score_pytorch"] - export["score_onnx_int8"]) <= 0.05
    assert report["shape"] == {"layers": 2, "hidden_size": 32}  # half the teacher's 4 layers
    assert export["parameters_student"] < export["parameters_teacher"]
    student = AutoModelForSequenceClassification.from_pretrained(project / "artifacts" / "tasks" / "reviews" / "classifier")
    assert student.config.id2label == {0: "liked", 1: "disliked"}

    store = f"sqlite:///{project}/mlruns/mlflow.db"
    client = mlflow.MlflowClient(store)
    version = client.get_model_version_by_alias("distilflow-reviews", "champion")
    assert float(version.tags["task_score"]) == pytest.approx(report["student"]["score"])  # the same number twice
    assert version.tags["task_data"] == report["data_hash"] and len(version.tags["teacher_fingerprint"]) == 16
    run = client.get_run(version.tags["mlflow_run_id"])
    assert [entry.dataset.name for entry in run.inputs.dataset_inputs] == ["task reviews"]

    port = free_port()
    asked = [{"text": "the film was superb and superb"}]
    with local_server(scoring_server_command("models:/distilflow-reviews@champion", port), "/ping", port,
                      env={"MLFLOW_TRACKING_URI": store}) as url:
        request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": asked}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"][0]
    assert answer["label"] in ("liked", "disliked") and set(answer["probabilities"]) == {"liked", "disliked"}
    assert abs(sum(answer["probabilities"].values()) - 1) < 1e-4

    again = _distilflow(project, tmp_path / "home2", "task", "reviews")  # a rerun: nothing twice
    assert again.returncode == 0, again.stderr[-3000:]
    assert "distilflow-reviews version 1 (already registered" in again.stdout


def test_an_unknown_task_is_one_line_naming_the_known_ones(project, tmp_path):
    done = _distilflow(project, tmp_path / "home", "task", "tickets")
    assert done.returncode == 2
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "no task 'tickets'" in lines[0] and "reviews" in lines[0]


@pytest.mark.parametrize(("entry", "fragments"), [
    (None, ["task file", "not found"]),
    ("- a list\n", ["must be a mapping"]),
    ("data: {files: {train: t.csv, report: r.csv}}\ntext: [review]\nkind: regression\nmetrics: [f1]\n"
     "teacher_classifier: teacher\n", ["tasks.mine", "metric f1 does not score a regression task"]),
    ("data: {files: {train: t.csv, report: r.csv}}\ntext: [review]\n", ["tasks.mine has no teacher_classifier"]),
    ("data: {files: {train: t.csv, report: r.csv}}\ntext: [review]\nteacher_classifier: t\nfinetune: {epoch: 2}\n",
     ["tasks.mine.finetune.epoch", "the keys are glue's"]),
])
def test_a_bad_task_file_is_one_line_and_exit_2(project, monkeypatch, capsys, entry, fragments):
    monkeypatch.chdir(project)
    if entry is not None:
        (project / "mine.yaml").write_text(entry)
    code, _, err = _run(monkeypatch, capsys, "task", "mine.yaml")
    assert code == 2
    _assert_one_line_error(code, err, *fragments)
