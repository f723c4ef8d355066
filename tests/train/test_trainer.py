from pathlib import Path

import pytest
import torch

from distilflow.config import LossConfig, MaskingConfig, StudentConfig, TrainConfig
from distilflow.data.masking import build_masker
from distilflow.data.prepared import prepare_corpus
from distilflow.errors import DistilflowError
from distilflow.train.batch_size import split_for_memory
from distilflow.train.divergence import step_unless_nonfinite
from distilflow.train.loop_io import Callbacks, Checkpoints, TrainingData
from distilflow.train.losses import DistillationLoss
from distilflow.train.student import PROJECTION, build_student
from distilflow.train.trainer import Trainer
from tests.conftest import tiny_data_config


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_corpus, tokenizer):
    return prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path_factory.mktemp("prepared"))


def _trainer(prepared, tokenizer, teacher, checkpoints, run_key="key", shape=StudentConfig(), **train):
    config = TrainConfig(**{"max_steps": 6, "micro_batch_size": 4, "gradient_accumulation_steps": 2,
                            "learning_rate": 1e-3, "checkpoint_every": 2, "eval_every": 100, "eval_sequences": 8,
                            "log_every": 1, **train})
    student, _ = build_student(teacher, shape, seed=0)
    masker = build_masker(MaskingConfig(), tokenizer, prepared.token_counts())
    logged = []
    trainer = Trainer(student, DistillationLoss(LossConfig()),
                      TrainingData(prepared.split("train"), prepared.split("validation"), masker, tokenizer), config,
                      Checkpoints(checkpoints, run_key), teacher=teacher,
                      callbacks=Callbacks(metrics=lambda metrics, step: logged.append((step, metrics))))
    return trainer, logged


def test_distillation_lowers_the_loss_and_logs_each_term(prepared, tokenizer, tiny_teacher, tmp_path):
    trainer, logged = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=12, learning_rate=3e-3)
    result = trainer.run()
    losses = [metrics["loss"] for _, metrics in logged if "loss" in metrics]
    assert sum(losses[-3:]) < sum(losses[:3])
    assert {"loss_ce", "loss_mlm", "loss_cos", "learning_rate", "tokens_per_second", "grad_norm"} <= set(logged[0][1])
    assert {"val_mlm_loss", "val_mlm_accuracy", "val_teacher_agreement"} <= set(result.validation)
    assert all(not p.requires_grad for p in trainer.teacher.parameters())


@pytest.mark.parametrize("shape", [StudentConfig(), StudentConfig(hidden_size=16)], ids=["same-width", "narrower"])
def test_interrupted_and_resumed_run_ends_with_identical_weights(prepared, tokenizer, tiny_teacher, tmp_path,
                                                                 monkeypatch, shape):
    """A narrower student's projection to the teacher's width (the hidden cosine) resumes exactly too."""
    straight, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path / "straight", shape=shape)
    straight.run()

    interrupted, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path / "resumed", shape=shape)
    real_step = Trainer.optimizer_step

    def dies_at_step_5(self, step_batch):
        if self.step == 4:
            raise KeyboardInterrupt  # as if killed: steps 4-5 are lost, the step-4 checkpoint survives
        return real_step(self, step_batch)

    monkeypatch.setattr(Trainer, "optimizer_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run()
    monkeypatch.setattr(Trainer, "optimizer_step", real_step)

    resumed, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path / "resumed", shape=shape)
    result = resumed.run(resume=True)
    assert result.resumed_from == 4
    straight_state, resumed_state = straight.model.state_dict(), resumed.model.state_dict()
    assert (PROJECTION + ".weight" in straight_state) == (shape.hidden_size is not None)
    assert all(torch.equal(straight_state[name], resumed_state[name]) for name in straight_state)
    # and the run really moved the weights
    fresh, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path / "unused", shape=shape)
    assert not torch.equal(fresh.model.bert.encoder.layer[0].output.dense.weight,
                           straight.model.bert.encoder.layer[0].output.dense.weight)


def test_resume_refuses_a_checkpoint_of_other_params(prepared, tokenizer, tiny_teacher, tmp_path):
    first, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=2)
    first.run()
    other, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, run_key="other", max_steps=4)
    with pytest.raises(DistilflowError, match="other params"):
        other.run(resume=True)


def test_too_little_data_for_a_batch_is_a_clear_error(prepared, tokenizer, tiny_teacher, tmp_path):
    with pytest.raises(DistilflowError, match="global batch"):
        _trainer(prepared, tokenizer, tiny_teacher, tmp_path, micro_batch_size=100_000)


def test_discard_stale_starts_over_instead_of_refusing(prepared, tokenizer, tiny_teacher, tmp_path):
    first, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=2)
    first.run()
    other, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, run_key="other", max_steps=4)
    result = other.run(resume=True, discard_stale=True)
    assert result.resumed_from is None and result.steps == 4


def test_batch_split_after_out_of_memory_trains_the_same_steps(prepared, tokenizer, tiny_teacher, tmp_path):
    """The retry after a CUDA OOM splits each micro-batch in 4: smaller pieces, the same weights after training."""
    from transformers import BertForMaskedLM

    from tests.conftest import tiny_bert_config

    config = tiny_bert_config(len(tokenizer))
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0  # same forward in both runs
    torch.manual_seed(0)
    teacher = BertForMaskedLM(config).eval()
    train = TrainConfig(max_steps=2, micro_batch_size=8, gradient_accumulation_steps=2, eval_sequences=8,
                        checkpoint_every=100, warmup_fraction=0.0)
    weights = []
    for split in (1, 4):
        student, _ = build_student(teacher, StudentConfig(), seed=0)
        data = TrainingData(prepared.split("train"), prepared.split("validation"), build_masker(MaskingConfig(), tokenizer),
                            tokenizer)
        trainer = Trainer(student, DistillationLoss(LossConfig()), data, split_for_memory(train, split),
                          Checkpoints(tmp_path / str(split), "k"), teacher=teacher)
        if split == 4:
            assert max(len(micro.input_ids) for micro in next(trainer.batches(0, 1))[0].micro_batches) == 2
        trainer.run()
        weights.append(torch.cat([p.detach().flatten() for p in student.parameters()]))
    assert torch.allclose(weights[0], weights[1], atol=1e-5)


def test_a_split_micro_batch_gives_the_gradient_of_one_large_batch(prepared, tokenizer):
    """Token-weighted accumulation: 2 x 4 sequences == 1 x 8, although the halves hold different
    numbers of targets (a mean of per-micro-batch means would differ)."""
    from transformers import BertForMaskedLM

    from tests.conftest import tiny_bert_config

    config = tiny_bert_config(len(tokenizer))
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0  # same forward in both runs
    torch.manual_seed(0)
    teacher = BertForMaskedLM(config).eval()
    gradients, losses, target_counts = [], [], []
    for micro, accumulation in ((8, 1), (4, 2)):
        student, _ = build_student(teacher, StudentConfig(), seed=0)
        train = TrainConfig(max_steps=1, micro_batch_size=micro, gradient_accumulation_steps=accumulation,
                            device="cpu", precision="fp32")
        data = TrainingData(prepared.split("train"), prepared.split("validation"), build_masker(MaskingConfig(), tokenizer),
                            tokenizer)
        trainer = Trainer(student, DistillationLoss(LossConfig(alpha_mse=0.5)), data, train,
                          Checkpoints(Path("unused"), "k"), teacher=teacher)
        step_batch = trainer.collator((0, prepared.split("train")[trainer.order.indices(0)]["input_ids"]))
        losses.append(trainer.accumulate_gradients(step_batch)["loss"].item())
        gradients.append({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        target_counts.append([len(m.target_index) for m in step_batch.micro_batches])
    assert len(target_counts[1]) == 2 and target_counts[1][0] != target_counts[1][1]
    assert sum(target_counts[1]) == target_counts[0][0]
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)
    assert gradients[0].keys() == gradients[1].keys() and len(gradients[0]) > 10
    for name, gradient in gradients[0].items():
        # equal up to float rounding (the halves are padded to other lengths): relative to the tensor's norm
        assert (gradient - gradients[1][name]).norm() <= 1e-5 * gradient.norm() + 1e-9, name  # key bias: 0 + noise


def test_a_diverging_run_stops_without_checkpointing_or_shipping_broken_weights(prepared, tokenizer, tiny_teacher,
                                                                               tmp_path):
    trainer, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, learning_rate=1e6, max_steps=20,
                          checkpoint_every=1)
    with pytest.raises(DistilflowError, match="diverged"):
        trainer.run()
    saved = sorted(tmp_path.glob("step_*.pt"))
    assert saved, "the steps before the divergence were checkpointed"
    last = torch.load(saved[-1], weights_only=False)
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert last["step"] < trainer.step


def _poison_gradients_at(monkeypatch, bad_steps: set[int]):
    """Make the gradient of the given steps NaN, as an overflow would."""
    real = Trainer.accumulate_gradients

    def accumulate(self, step_batch):
        terms = real(self, step_batch)
        if self.step + 1 in bad_steps:
            next(p for p in self.trainable if p.grad is not None).grad.view(-1)[0] = float("nan")
        return terms

    monkeypatch.setattr(Trainer, "accumulate_gradients", accumulate)


def test_a_step_with_a_nan_gradient_is_skipped_and_counted(prepared, tokenizer, tiny_teacher, tmp_path, monkeypatch):
    trainer, logged = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=5, max_nonfinite_steps=1)
    weights_after = {}
    real_step = Trainer.optimizer_step

    def recording_step(self, step_batch):
        terms = real_step(self, step_batch)
        weights_after[self.step + 1] = self.model.bert.encoder.layer[0].output.dense.weight.detach().clone()
        return terms

    monkeypatch.setattr(Trainer, "optimizer_step", recording_step)
    _poison_gradients_at(monkeypatch, {3})
    trainer.run()
    assert torch.equal(weights_after[3], weights_after[2]), "the NaN step changed the weights"
    assert not torch.equal(weights_after[4], weights_after[3]), "training went on after the bad step"
    assert [metrics["nonfinite_steps"] for _, metrics in logged if "loss" in metrics] == [0, 0, 1, 1, 1]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_more_nan_steps_than_allowed_stop_the_run_and_keep_the_good_checkpoints(prepared, tokenizer, tiny_teacher,
                                                                               tmp_path, monkeypatch):
    trainer, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=8, max_nonfinite_steps=1)
    _poison_gradients_at(monkeypatch, {5, 6})
    with pytest.raises(DistilflowError, match=r"2 steps had a NaN or infinite loss or gradient \(more than max_nonfinite_"):
        trainer.run()
    assert trainer.step == 6
    assert [path.name for path in sorted(tmp_path.glob("step_*.pt"))][-1] == "step_0000004.pt"


def test_fused_adamw_skips_the_update_on_the_device_when_told(prepared, tokenizer, tiny_teacher, tmp_path):
    trainer, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path)
    parameters = [p for p in trainer.model.parameters() if p.requires_grad]
    trainer.optimizer = torch.optim.AdamW(parameters, lr=1e-2, fused=True)  # what CUDA runs use; CPU has it too
    for p in parameters:
        p.grad = torch.ones_like(p)
    before = [p.detach().clone() for p in parameters]
    step_unless_nonfinite(trainer.optimizer, torch.tensor(True))
    assert all(torch.equal(a, b) for a, b in zip(before, parameters))
    step_unless_nonfinite(trainer.optimizer, torch.tensor(False))
    assert not torch.equal(before[0], parameters[0])


def test_a_run_that_goes_non_finite_stops_past_the_limit_and_checkpoints_none_of_it(prepared, tokenizer, tiny_teacher,
                                                                                   tmp_path, monkeypatch):
    """Non-finite from step 2 on: on a CPU the run stops at the step that passes the limit, not at its next log,
    and what it checkpointed since step 2 is nothing, so the rotation kept the checkpoint from before."""
    _poison_gradients_at(monkeypatch, set(range(2, 100)))
    trainer, _ = _trainer(prepared, tokenizer, tiny_teacher, tmp_path, max_steps=40, log_every=20, checkpoint_every=1,
                          keep_checkpoints=2, max_nonfinite_steps=3)
    with pytest.raises(DistilflowError, match=r"training diverged: 4 steps had a NaN or infinite loss or gradient "
                                              r"\(more than max_nonfinite_steps=3\) by step 5"):
        trainer.run()
    assert trainer.step == 5
    assert [path.name for path in sorted(tmp_path.glob("step_*.pt"))] == ["step_0000001.pt"]
