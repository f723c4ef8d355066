"""Fine-tuning that outlasts its process: a run stopped mid-epoch resumes from its checkpoint to the same result."""

import numpy as np
import pytest
from transformers import Trainer

from distilflow.evaluation import finetune
from distilflow.evaluation.glue_data import get_task, load_task


class Killed(Exception):
    """The session ending under a fine-tuning."""


@pytest.fixture
def stsb(params):
    task = get_task("stsb")  # a continuous metric: any difference in the path shows
    splits = load_task(task, params.glue.source)
    return task, {"train": splits["train"].select(range(48)), "": splits[""].select(range(32))}


def fine_tune(params, folder, task, splits, **options):
    config = params.glue.model_copy(update={"epochs": 2, "batch_size": 8, "max_seq_length": 32, "progress": False})
    return finetune.finetune_and_evaluate(folder, task, splits, config, seed=3, learning_rate=1e-3,
                                          predict_train=True, **options)


def test_a_fine_tuning_killed_mid_epoch_resumes_to_the_same_model(params, headless_teacher_dir, stsb, tmp_path,
                                                                 monkeypatch):
    task, splits = stsb  # 48 rows / 8 = 6 steps an epoch, 12 in all
    whole = fine_tune(params, headless_teacher_dir, task, splits)

    real_step, steps = Trainer.training_step, []
    die_at = [9]

    def counted(self, *args, **kwargs):
        steps.append(1)
        if len(steps) in die_at:
            raise Killed
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", counted)
    checkpoints = tmp_path / "checkpoints"
    with pytest.raises(Killed):
        fine_tune(params, headless_teacher_dir, task, splits, checkpoints=checkpoints, checkpoint_every=4)
    assert [p.name for p in checkpoints.iterdir()] == ["checkpoint-8"]  # mid-way through the second epoch

    steps.clear(), die_at.clear()
    resumed = fine_tune(params, headless_teacher_dir, task, splits, checkpoints=checkpoints, checkpoint_every=4)
    assert len(steps) == 4  # steps 9-12 only: it went on from the checkpoint, not from the start
    assert resumed.metrics == whole.metrics
    np.testing.assert_array_equal(resumed.train_logits, whole.train_logits)
