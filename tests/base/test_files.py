"""Outputs are written whole or not at all; one run per output at a time."""

import json

import pytest

from distilflow.base.files import exclusive, replace_folder, write_atomically, write_json
from distilflow.base.model_folder import MODEL_META, save_model
from distilflow.errors import DistilflowError


def test_a_failed_write_leaves_the_previous_file_and_no_partial(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"loss": 1.0})

    def dies_half_way(temporary):
        temporary.write_text('{"loss": 0.')
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_atomically(target, dies_half_way)
    assert json.loads(target.read_text()) == {"loss": 1.0}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]


def test_a_folder_is_swapped_in_only_when_complete(tmp_path):
    output = tmp_path / "student"
    replace_folder(output, lambda staging: (staging / "marker").write_text("v1"), marker="marker")

    def fails(staging):
        (staging / "marker").write_text("v2")
        raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError):
        replace_folder(output, fails, marker="marker")
    assert (output / "marker").read_text() == "v1" and sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_a_failed_mlflow_upload_keeps_the_previous_model(tmp_path, tiny_teacher, tokenizer):
    output = tmp_path / "student"
    save_model(tiny_teacher, tokenizer, output, {"fingerprint": "first"})

    def upload_fails(staging):
        raise ConnectionError("tracking server went away")

    with pytest.raises(ConnectionError):
        save_model(tiny_teacher, tokenizer, output, {"fingerprint": "second"}, publish=upload_fails)
    assert json.loads((output / MODEL_META).read_text())["fingerprint"] == "first"


def test_a_second_run_on_the_same_output_is_refused_in_one_line(tmp_path):
    output = tmp_path / "student"
    with exclusive(output):
        with pytest.raises(DistilflowError, match="'.*student' is in use by another distilflow run"):
            with exclusive(output, wait_seconds=0.2):
                pass
    with exclusive(output):  # free again once the first run is done
        pass
