"""GLUE evaluation end to end with tiny models: report, retention, nested MLflow runs, cached baseline."""

import shutil

import mlflow
import numpy as np
import pytest

from distilflow.base import hashing
from distilflow.base.hashing import executed_modules
from distilflow.config import StudentConfig
from distilflow.errors import DistilflowError
from distilflow.evaluation import finetune, glue_runs, latency
from distilflow.evaluation.glue_data import get_task
from distilflow.evaluation.glue_results import TaskResult, build_report, read_report
from distilflow.evaluation.report import render_markdown
from distilflow.jobs import glue as glue_job
from distilflow.train.student import build_student
from tests.conftest import ROOT, SHARED


@pytest.fixture
def params(make_params, teacher_with_head_dir):
    return make_params(teacher_with_head_dir, glue={
        "tasks": ["rte", "stsb"], "max_train_examples": 32, "epochs": 1, "batch_size": 8, "seeds": [1, 2],
        "max_seq_length": 32, "progress": False, "latency": {"batch_sizes": [1, 4], "seq_length": 16, "repeats": 2}})


@pytest.fixture
def student_dir(tmp_path, tiny_teacher, tokenizer):
    student, _ = build_student(tiny_teacher, StudentConfig())
    student.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    return str(tmp_path / "student")


def test_student_vs_teacher_report(params, in_store, student_dir, teacher_with_head_dir, monkeypatch):
    calls = []
    real = finetune.finetune_and_evaluate
    monkeypatch.setattr(glue_runs, "finetune_and_evaluate", lambda *a, **k: calls.append(a[1].name) or real(*a, **k))
    report = glue_job.run(params, student_dir, str(teacher_with_head_dir))
    assert sorted(calls) == ["rte"] * 4 + ["stsb"] * 4  # 2 models x 2 seeds per task

    student, teacher = report.models["student"], report.models["teacher"]
    assert set(student.metrics["stsb"]) == {"stsb_pearson", "stsb_spearman"}
    assert student.scores["rte"] == pytest.approx(student.metrics["rte"]["rte_accuracy"])
    assert report.retention["rte"] == pytest.approx(student.scores["rte"] / teacher.scores["rte"])
    assert student.glue_score == pytest.approx((student.scores["rte"] + student.scores["stsb"]) / 2)
    assert student.speed["parameters"] < teacher.speed["parameters"]
    assert {"latency_ms_cpu_b1", "latency_ms_cpu_b4", "latency_iqr_ms_cpu_b1", "size_mb"} <= set(student.speed)
    assert report.speedup["cpu_b4"] > 0 and set(report.speedup) == {"cpu_b1", "cpu_b4"}
    assert report.timing["model"] == "encoder" and report.timing["protocol"] == latency.PROTOCOL

    folder = params.paths.glue / "by_hand"  # never over the pipeline's report
    assert read_report(folder / "glue.json") == report and not (params.paths.metrics / "glue.json").exists()
    markdown = (folder / "glue_report.md").read_text()
    assert "rte, stsb" in markdown and "retention" in markdown
    assert (folder / "glue_scores.png").stat().st_size > 1000

    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{report.mlflow_run_id}'")
    assert len(children) == 4 and {"metrics.score"} <= set(children.columns)
    parent = mlflow.get_run(report.mlflow_run_id)
    assert parent.data.metrics["glue_retention"] == pytest.approx(report.glue_retention)

    calls.clear()
    again = glue_job.run(params, student_dir, str(teacher_with_head_dir), tasks="rte")
    assert calls == ["rte", "rte"]  # the student again (2 seeds); the teacher baseline from the cache
    assert again.models["teacher"].scores["rte"] == teacher.scores["rte"]


def _count_finetuning(monkeypatch) -> list[str]:
    calls = []
    monkeypatch.setattr(glue_runs, "finetune_and_evaluate",
                        lambda model, task, *a, **k: calls.append(task.name)
                        or finetune.FineTuned({"": {"accuracy": 0.5}}, np.zeros((32, 2))))
    return calls


def test_cached_baseline_is_recomputed_when_the_data_is_re_pinned(params, teacher_with_head_dir, tmp_path,
                                                                   monkeypatch):
    calls = _count_finetuning(monkeypatch)
    release = tmp_path / "glue_release"
    shutil.copytree(SHARED / "data" / "glue" / "RTE", release / "RTE")
    config = params.glue.model_copy(update={"source": str(release), "seeds": [1]})
    task, cache = get_task("rte"), tmp_path / "cache"
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, config, cache)
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, config, cache)
    assert calls == ["rte"]  # same weights, data, settings and code: cached
    dev = release / "RTE" / "dev.tsv"
    dev.write_text(dev.read_text().replace("\tentailment\n", "\tnot_entailment\n", 1))  # a corrected label
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, config, cache)
    assert calls == ["rte", "rte"]


@pytest.mark.parametrize("module, recomputed", [("distilflow.evaluation.finetune", True),
                                                ("distilflow.config", False), ("distilflow.errors", False)])
def test_cached_baseline_is_recomputed_when_the_fine_tuning_code_changes(params, teacher_with_head_dir, tmp_path,
                                                                          monkeypatch, module, recomputed):
    """Fine-tuning code decides the scores; config.py's code does not (its values are in the key), so a new
    setting elsewhere keeps the recorded baselines."""
    calls = _count_finetuning(monkeypatch)
    config = params.glue.model_copy(update={"seeds": [1]})
    task, cache = get_task("rte"), tmp_path / "cache"
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, config, cache)
    assert module in executed_modules("distilflow.evaluation.glue_runs")
    real_file = hashing.module_file

    def edited(name):  # the module as if someone had changed a line in it
        path = real_file(name)
        if name == module:
            copy = tmp_path / "edited.py"
            copy.write_text(path.read_text() + "\nCHANGED = True\n")
            return copy
        return path

    monkeypatch.setattr(hashing, "module_file", edited)
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, config, cache)
    assert calls == (["rte", "rte"] if recomputed else ["rte"])


def test_a_zero_teacher_score_gives_no_retention_instead_of_an_error():
    result = lambda score: TaskResult(task="cola", metrics={"": {"matthews_correlation": score}}, score=score,  # noqa: E731
                                      learning_rate=1e-4)
    speed = {"parameters": 10.0, "latency_ms_cpu_b1": 2.0}
    report = build_report({"seeds": [1]}, {"student": {"cola": result(0.1)}, "teacher": {"cola": result(0.0)}},
                          {"student": "s", "teacher": "t"}, {"student": "a", "teacher": "b"},
                          {"student": speed, "teacher": {**speed, "parameters": 20.0}})
    assert report.retention == {"cola": None} and report.glue_retention is None
    assert "| cola | 10.0 | 0.0 | – |" in render_markdown(report)
    assert "glue_retention" not in report.summary_metrics()


def test_unknown_task_and_missing_model_are_clear(params, tmp_path):
    with pytest.raises(DistilflowError, match="unknown GLUE task"):
        glue_job.run(params, "x", tasks="rtee")
    with pytest.raises(DistilflowError, match="no_such_model. not found .*give an existing model folder"):
        glue_job.run(params, str(tmp_path / "no_such_model"), tasks="rte")


def test_fine_tuning_is_seeded_whatever_the_process_rng_held(params, student_dir):
    """The new classifier and the student's missing pooler start from the run's seed."""
    import torch

    from distilflow.evaluation.glue_data import load_task

    task = get_task("stsb")  # a continuous metric: any change in the start shows
    splits = load_task(task, params.glue.source)
    splits = {"train": splits["train"].select(range(32)), "": splits[""].select(range(64))}
    results = []
    for disturbance in (123, 456):
        torch.manual_seed(disturbance)  # e.g. a library that drew random numbers before
        results.append(finetune.finetune_and_evaluate(student_dir, task, splits, params.glue, seed=1, learning_rate=1e-3))
    assert results[0] == results[1]


def test_a_stale_recorded_baseline_is_fine_tuned_again_and_the_run_says_why(params, teacher_with_head_dir, tmp_path,
                                                                              monkeypatch, caplog):
    """Recorded baselines (paths.glue_baselines) are for one version of the fine-tuning code: after a change to it
    the stage fine-tunes the teacher again, and says so, rather than a test failing until someone re-records."""
    calls = _count_finetuning(monkeypatch)
    task = get_task("rte")
    records = tmp_path / "recorded"
    records.mkdir()
    (records / "rte-0123456789abcdef.json").write_text("{}")  # recorded by other code
    caplog.set_level("INFO", logger="distilflow")
    glue_runs.evaluate_task(str(teacher_with_head_dir), task, params.glue.model_copy(update={"seeds": [1]}),
                            cache_dir=tmp_path / "cache", records_dir=records)
    assert calls == ["rte"]
    assert (f"rte: fine-tuning the baseline {teacher_with_head_dir} now: the 1 recorded in {records} are for other "
            "weights, data, settings or fine-tuning code") in caplog.text


def test_a_comment_in_the_fine_tuning_code_keeps_the_recorded_baselines():
    from distilflow.base.hashing import code_text

    source = (ROOT / "distilflow" / "evaluation" / "finetune.py").read_text()
    edited = source.replace("\nfrom __future__", "\n# a comment\nfrom __future__", 1).replace('"""', '"""Doc. ', 1)
    assert edited != source and code_text(source) == code_text(edited)
    assert code_text(source) != code_text(source.replace("def ", "def _", 1))


def test_a_killed_evaluation_resumes_its_fine_tunings_and_skips_the_finished_ones(params, student_dir, tmp_path,
                                                                                  monkeypatch):
    """The pipeline's GLUE stage outlasting its process: seed 1 finished, seed 2 killed after its checkpoint;
    the rerun reuses seed 1, resumes seed 2 and gets the uninterrupted result; another model's folder is not
    resumed but cleared."""
    from transformers import Trainer

    task, checkpoints = get_task("rte"), tmp_path / "checkpoints"
    whole = glue_runs.evaluate_task(student_dir, task, params.glue)  # 32 rows / 8: 4 steps per seed, seeds 1, 2
    monkeypatch.setattr(glue_runs, "CHECKPOINT_EVERY", 2)
    real_step, steps = Trainer.training_step, []

    def counted(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 7:  # seed 2's third step, after its checkpoint at step 2
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counted)
    with pytest.raises(KeyboardInterrupt):
        glue_runs.evaluate_task(student_dir, task, params.glue, checkpoints=checkpoints)
    (stale := checkpoints / "0123456789abcdef").mkdir()  # an older student's
    steps.clear()
    resumed = glue_runs.evaluate_task(student_dir, task, params.glue, checkpoints=checkpoints)
    assert len(steps) == 2  # seed 1 not redone, seed 2 from step 2 of 4
    assert resumed == whole
    assert not stale.exists() and list(checkpoints.iterdir()) == []  # done: nothing left to resume
