import pytest

from distilflow.base.pretrained import MIRROR_ENV, SET_TEACHER, load_masked_lm, model_fingerprint, resolve
from distilflow.errors import DistilflowError
from tests.conftest import HUB, MINILM_ID


def test_local_path_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(HUB))
    assert resolve(str(tmp_path)) == str(tmp_path)


def test_mirror_is_used_for_hub_ids_it_holds(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(HUB))
    assert resolve(MINILM_ID) == str(HUB / MINILM_ID)


def test_hub_id_is_passed_through_when_not_mirrored(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(HUB))
    assert resolve("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    monkeypatch.delenv(MIRROR_ENV)
    assert resolve(MINILM_ID) == MINILM_ID


def test_missing_model_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DistilflowError, match=r"teacher 'no-such-org/no-such-model' not found.*give an existing model"):
        load_masked_lm("no-such-org/no-such-model", role="teacher")  # a name from the command line
    with pytest.raises(DistilflowError, match=r"teacher 'no-such-org/no-such-model' not found.*set teacher.model in"):
        load_masked_lm("no-such-org/no-such-model", role="teacher", fix=SET_TEACHER)  # from params.yaml


def test_fingerprint_follows_weights_not_location(tiny_teacher, teacher_with_head_dir):
    loaded, missing = load_masked_lm(str(teacher_with_head_dir))
    assert not missing
    assert model_fingerprint(loaded) == model_fingerprint(tiny_teacher)
    loaded.bert.embeddings.word_embeddings.weight.data[0, 0] += 1.0
    assert model_fingerprint(loaded) != model_fingerprint(tiny_teacher)


def test_a_truncated_model_file_is_one_line_naming_the_folder(tmp_path, teacher_with_head_dir):
    import shutil

    damaged = tmp_path / "teacher"
    shutil.copytree(teacher_with_head_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DistilflowError, match=r"teacher '.*teacher' is there but unreadable \(.*\): copy it again"):
        load_masked_lm(str(damaged), role="teacher")
    (damaged / "distilflow.json").write_text("{}")  # a folder a stage wrote: the stage can make it again
    with pytest.raises(DistilflowError, match=r"unreadable \(.*\): rebuild it \(rerun the stage that wrote it"):
        load_masked_lm(str(damaged), role="teacher")


def test_a_users_folder_with_a_tokenizer_but_no_weights_says_so(tmp_path, teacher_with_head_dir):
    import shutil

    folder = tmp_path / "teacher"
    shutil.copytree(teacher_with_head_dir, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(DistilflowError, match=r"teacher folder '.*' has no weights \(none of model.safetensors, "):
        load_masked_lm(str(folder), role="teacher")
