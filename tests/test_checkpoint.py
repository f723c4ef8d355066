import pytest
import torch

from distilflow.checkpoint import checkpoint_to_resume, list_checkpoints, load_checkpoint, save_checkpoint
from distilflow.errors import DistilflowError


def test_checkpoints_are_complete_files_and_old_ones_pruned(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, {"weights": torch.ones(3) * step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_0000020.pt", "step_0000030.pt"]
    assert not list(tmp_path.glob("*.partial"))
    assert torch.equal(load_checkpoint(list_checkpoints(tmp_path)[-1])["weights"], torch.ones(3) * 30)


def test_a_partial_write_is_never_taken_for_a_checkpoint(tmp_path):
    (tmp_path / ".step_0000040.pt.partial").write_bytes(b"half")
    assert list_checkpoints(tmp_path) == []


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, 5, {"weights": torch.zeros(1000)}, keep=1)
    path.write_bytes(path.read_bytes()[:200])  # truncated, as by a full disk
    with pytest.raises(DistilflowError, match=r"corrupt.*--restart"):
        load_checkpoint(path)


def test_existing_checkpoint_needs_an_explicit_choice(tmp_path):
    save_checkpoint(tmp_path, 5, {}, keep=1)
    with pytest.raises(DistilflowError, match="--resume.*--restart"):
        checkpoint_to_resume(tmp_path, resume=False, restart=False)
    assert checkpoint_to_resume(tmp_path, resume=True, restart=False).name == "step_0000005.pt"
    assert checkpoint_to_resume(tmp_path, resume=False, restart=True) is None
