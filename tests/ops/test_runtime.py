from distilflow.ops import runtime


def test_batch_split_from_the_environment(monkeypatch):
    monkeypatch.delenv(runtime.BATCH_SPLIT_ENV, raising=False)
    assert runtime.batch_split() == 1
    monkeypatch.setenv(runtime.BATCH_SPLIT_ENV, "4")
    assert runtime.batch_split() == 4
    monkeypatch.setenv(runtime.BATCH_SPLIT_ENV, "zero")
    assert runtime.batch_split() == 1


def test_progress_round_trip(monkeypatch, tmp_path):
    path = tmp_path / "progress.json"
    monkeypatch.setenv(runtime.PROGRESS_FILE_ENV, str(path))
    runtime.report_progress("distill", 3, 12)
    assert runtime.read_progress(path) == {"description": "distill", "done": 3, "total": 12}
    assert runtime.read_progress(tmp_path / "missing.json") is None
