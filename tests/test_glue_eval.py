"""GLUE evaluation end to end with tiny models: report, retention, nested MLflow runs, cached baseline."""

import json

import mlflow
import pytest

from distilflow import finetune, glue_eval, pipeline
from distilflow.config import StudentConfig, validate_params
from distilflow.student import build_student
from tests.conftest import tiny_params


@pytest.fixture
def params(tmp_path, small_corpus, teacher_with_head_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    raw = tiny_params(tmp_path, small_corpus, teacher_with_head_dir)
    raw["glue"] = {"tasks": ["rte", "stsb"], "max_train_examples": 32, "epochs": 1, "batch_size": 8,
                   "seeds": [1, 2], "max_seq_length": 32, "progress": False,
                   "latency": {"batch_sizes": [1, 4], "seq_length": 16, "repeats": 2}}
    raw["paths"]["glue"] = str(tmp_path / "glue")
    raw["paths"]["metrics"] = str(tmp_path / "metrics")
    return validate_params(raw)


@pytest.fixture
def student_dir(tmp_path, tiny_teacher, tokenizer):
    student, _ = build_student(tiny_teacher, StudentConfig())
    student.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    return str(tmp_path / "student")


def test_student_vs_teacher_report(params, student_dir, teacher_with_head_dir, monkeypatch):
    calls = []
    real = finetune.finetune_and_evaluate
    monkeypatch.setattr(glue_eval, "finetune_and_evaluate", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))
    report = pipeline.glue(params, student_dir, str(teacher_with_head_dir))
    assert sorted(calls) == ["rte"] * 4 + ["stsb"] * 4  # 2 models x 2 seeds per task

    student, teacher = report["models"]["student"], report["models"]["teacher"]
    assert set(student["metrics"]["stsb"]) == {"stsb_pearson", "stsb_spearman"}
    assert student["scores"]["rte"] == pytest.approx(student["metrics"]["rte"]["rte_accuracy"])
    assert report["retention"]["rte"] == pytest.approx(student["scores"]["rte"] / teacher["scores"]["rte"])
    assert student["glue_score"] == pytest.approx((student["scores"]["rte"] + student["scores"]["stsb"]) / 2)
    assert student["speed"]["parameters"] < teacher["speed"]["parameters"]
    assert {"latency_ms_cpu_b1", "latency_ms_cpu_b4", "size_mb"} <= set(student["speed"])
    assert report["speedup"]["cpu_b4"] > 0

    assert json.loads((params.paths.metrics / "glue.json").read_text())["tasks"] == ["rte", "stsb"]
    markdown = (params.paths.glue / "glue_report.md").read_text()
    assert "rte, stsb" in markdown and "retention" in markdown
    assert (params.paths.glue / "glue_scores.png").stat().st_size > 1000

    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{report['mlflow_run_id']}'")
    assert len(children) == 4 and {"metrics.score"} <= set(children.columns)
    parent = mlflow.get_run(report["mlflow_run_id"])
    assert parent.data.metrics["glue_retention"] == pytest.approx(report["glue_retention"])

    calls.clear()
    again = pipeline.glue(params, student_dir, str(teacher_with_head_dir), tasks="rte")
    assert calls == []  # both models' results come from the cache
    assert again["models"]["teacher"]["scores"]["rte"] == teacher["scores"]["rte"]


def test_unknown_task_and_missing_model_are_clear(params):
    from distilflow.errors import DistilflowError

    with pytest.raises(DistilflowError, match="unknown GLUE task"):
        pipeline.glue(params, "x", tasks="rtee")
