from pathlib import Path

from distilflow.base import stage_env


def test_batch_split_from_the_environment(monkeypatch):
    monkeypatch.delenv(stage_env.BATCH_SPLIT_ENV, raising=False)
    assert stage_env.batch_split() == 1
    monkeypatch.setenv(stage_env.BATCH_SPLIT_ENV, "4")
    assert stage_env.batch_split() == 4
    monkeypatch.setenv(stage_env.BATCH_SPLIT_ENV, "zero")
    assert stage_env.batch_split() == 1


def test_progress_round_trip(monkeypatch, tmp_path):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(stage_env.PROGRESS_FILE_ENV, str(path))
    stage_env.report_progress("distill", 3, 12)
    assert stage_env.read_progress(path) == {"description": "distill", "done": 3, "total": 12}
    assert stage_env.read_progress(tmp_path / "missing.json") is None


def test_a_dvc_experiments_checkpoints_live_in_the_project_one_folder_per_experiment(monkeypatch, tmp_path):
    checkpoints = Path("artifacts/checkpoints/distill")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert stage_env.resumable_path(checkpoints) == checkpoints  # a plain run: where params.yaml says
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # the project, while the stage runs in a temporary copy
    monkeypatch.setenv("DVC_EXP_NAME", "frontier-6x256")
    assert stage_env.resumable_path(checkpoints) == tmp_path / "artifacts/checkpoints/distill@frontier-6x256"
    monkeypatch.setenv("DVC_EXP_NAME", "frontier-4x192")
    assert stage_env.resumable_path(checkpoints) == tmp_path / "artifacts/checkpoints/distill@frontier-4x192"
