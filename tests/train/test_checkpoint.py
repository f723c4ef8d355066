import pytest
import torch

from distilflow.errors import DistilflowError
from distilflow.train.checkpoint import checkpoint_to_resume, list_checkpoints, load_checkpoint, save_checkpoint


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


def test_a_full_disk_is_one_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno

    def disk_full(obj, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"x" * 1000)  # part of the file made it to disk
        raise OSError(errno.ENOSPC, "No space left on device")

    save_checkpoint(tmp_path, 5, {"weights": torch.ones(2)}, keep=2)
    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(DistilflowError, match="no space left.*--resume"):
        save_checkpoint(tmp_path, 10, {"weights": torch.ones(2)}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000005.pt"]  # the good one stays


def test_clearing_removes_leftover_partial_files_but_nothing_else(tmp_path):
    from distilflow.train.checkpoint import clear_checkpoints

    save_checkpoint(tmp_path, 5, {}, keep=2)
    (tmp_path / ".step_0000010.pt.partial").write_bytes(b"half")  # left by a killed process
    (tmp_path / "notes.txt").write_text("a user's file")
    clear_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
