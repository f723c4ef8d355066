"""The GPU path: run by bench/gpu/check.sh on a lent GPU (`pytest tests/train/test_gpu.py -m gpu`), skipped
where CUDA is absent (CI). Imports only the core: the GPU machine has no MLflow, Prefect or DVC.

bench/gpu/rehearsal.sh runs them on the CPU (DISTILFLOW_GPU_REHEARSAL=1): bf16 autocast, the teacher
stored in bf16, fused AdamW and inductor all run there, so every code path the GPU takes is exercised
except the CUDA kernels; what only CUDA has (its RNG, memory, latency, host syncs) is skipped."""

import math
import os

import pytest
import torch
from transformers import AutoModelForMaskedLM

from distilflow.config import GlueConfig, LossConfig, MaskingConfig, StudentConfig, TrainConfig
from distilflow.data.masking import build_masker
from distilflow.data.prepared import prepare_corpus
from distilflow.evaluation.finetune import finetune_and_evaluate
from distilflow.evaluation.glue_data import get_task, load_task
from distilflow.evaluation.latency import measure
from distilflow.train.loop_io import Callbacks, Checkpoints, TrainingData
from distilflow.train.losses import DistillationLoss
from distilflow.train.student import build_student
from distilflow.train.teacher_head import freeze_all_but_head
from distilflow.train.trainer import Trainer
from tests.conftest import HUB, tiny_data_config

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
REHEARSAL = os.environ.get("DISTILFLOW_GPU_REHEARSAL") == "1"
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not (ON_GPU or REHEARSAL), reason="needs a CUDA GPU")]
cuda_only = pytest.mark.skipif(not ON_GPU, reason="CUDA's own (RNG, memory, kernels, host syncs): not rehearsed on a CPU")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, small_corpus, tokenizer):
    return prepare_corpus(tiny_data_config(small_corpus), tokenizer, tmp_path_factory.mktemp("prepared"))


def _data(prepared, tokenizer, masker=None, train=None, sequence_length=None) -> TrainingData:
    return TrainingData(prepared.split("train") if train is None else train, prepared.split("validation"),
                        masker or build_masker(MaskingConfig(), tokenizer), tokenizer, sequence_length)


def _logging_to(logged: list) -> Callbacks:
    return Callbacks(metrics=lambda metrics, step: logged.append(metrics))


def _train_config(**values) -> TrainConfig:
    return TrainConfig(**{"max_steps": 6, "micro_batch_size": 8, "gradient_accumulation_steps": 2,
                          "learning_rate": 3e-3, "checkpoint_every": 2, "eval_every": 4, "eval_sequences": 16,
                          "log_every": 2, "device": DEVICE, "precision": "bf16", **values})


def test_head_training_then_distillation_on_the_gpu_in_bf16(prepared, tokenizer, headless_teacher_dir, tmp_path):
    teacher = AutoModelForMaskedLM.from_pretrained(headless_teacher_dir)
    freeze_all_but_head(teacher, unfreeze_top_layers=1)
    logged = []
    head = Trainer(teacher, DistillationLoss(LossConfig(alpha_ce=0, alpha_cos=0, alpha_mlm=1)),
                   _data(prepared, tokenizer, build_masker(MaskingConfig(smoothing=0.0), tokenizer)), _train_config(),
                   Checkpoints(tmp_path / "head", "head"), callbacks=_logging_to(logged))
    head.run()
    assert head.device.type == DEVICE and head.autocast_dtype == torch.bfloat16
    assert next(teacher.parameters()).device.type == DEVICE
    student, _ = build_student(teacher.cpu(), StudentConfig(), seed=0)
    distill = Trainer(student, DistillationLoss(LossConfig()), _data(prepared, tokenizer), _train_config(),
                      Checkpoints(tmp_path / "distill", "distill"), teacher=teacher, callbacks=_logging_to(logged))
    result = distill.run()
    assert distill.teacher.base_model.encoder.layer[0].output.dense.weight.dtype == torch.bfloat16
    assert distill.teacher.get_output_embeddings().weight.dtype == torch.float32  # fp32 vocabulary projection
    assert all(p.device.type == DEVICE and p.dtype == torch.float32 for p in distill.model.parameters())  # fp32 master
    assert distill.optimizer.defaults["fused"]  # one kernel, and a non-finite step skipped without a host sync
    losses = [m["loss"] for m in logged if "loss" in m]
    assert losses and all(math.isfinite(x) for x in losses)
    assert {"val_mlm_loss", "val_teacher_agreement"} <= set(result.validation)


def test_bf16_loss_is_close_to_the_fp32_loss(prepared, tokenizer, tiny_teacher, tmp_path):
    losses = {}
    for precision in ("fp32", "bf16"):
        student, _ = build_student(tiny_teacher, StudentConfig(), seed=0)
        trainer = Trainer(student, DistillationLoss(LossConfig()), _data(prepared, tokenizer),
                          _train_config(precision=precision), Checkpoints(tmp_path / precision, "k"), teacher=tiny_teacher)
        trainer.model.eval()  # no dropout: the two passes see the same network
        batch = trainer.collator((0, prepared.split("train")[trainer.order.indices(0)]["input_ids"]))
        losses[precision] = trainer.accumulate_gradients(batch)["loss"].item()
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.02)


@cuda_only
def test_kill_and_resume_on_the_gpu_restores_the_cuda_rng(prepared, tokenizer, tiny_teacher, tmp_path, monkeypatch):
    """Killed at step 5, resumed from the step-4 checkpoint: the weights match an uninterrupted run up to
    the GPU's non-deterministic kernels (attention backward), far closer than a resume that lost the
    CUDA RNG state (other dropout masks) gets."""
    import distilflow.train.trainer as trainer_module

    def trainer(folder):
        student, _ = build_student(tiny_teacher, StudentConfig(), seed=0)
        return Trainer(student, DistillationLoss(LossConfig()), _data(prepared, tokenizer), _train_config(eval_every=100),
                       Checkpoints(folder, "k"), teacher=tiny_teacher)

    def interrupted_then_resumed(folder):
        real_step = Trainer.optimizer_step

        def dies_at_step_5(self, step_batch):
            if self.step == 4:
                raise KeyboardInterrupt
            return real_step(self, step_batch)

        with monkeypatch.context() as patch:
            patch.setattr(Trainer, "optimizer_step", dies_at_step_5)
            interrupted = trainer(folder)
            with pytest.raises(KeyboardInterrupt):
                interrupted.run()
        resumed = trainer(folder)
        assert resumed.run(resume=True).resumed_from == 4
        return resumed.model.state_dict()

    straight = trainer(tmp_path / "straight")
    straight.run()
    reference = straight.model.state_dict()
    resumed = interrupted_then_resumed(tmp_path / "resumed")
    restore_cpu_only = trainer_module.restore_rng_states

    def lose_cuda_state(states):
        restore_cpu_only({name: value for name, value in states.items() if name != "cuda"})

    monkeypatch.setattr(trainer_module, "restore_rng_states", lose_cuda_state)
    without_cuda_rng = interrupted_then_resumed(tmp_path / "lost")

    def distance(state):
        return max(float((state[name].float() - weight.float()).abs().max()) for name, weight in reference.items())

    assert distance(resumed) <= 1e-5
    assert distance(without_cuda_rng) > 100 * max(distance(resumed), 1e-7)


@cuda_only
def test_one_small_glue_task_fine_tunes_on_the_gpu(teacher_with_head_dir):
    task = get_task("rte")
    splits = load_task(task, str(HUB / "nyu-mll" / "glue"))
    splits = {"train": splits["train"].select(range(64)), "": splits[""].select(range(32))}
    config = GlueConfig(max_seq_length=64, batch_size=16, epochs=1, learning_rates=[1e-4], progress=False,
                        device="cuda")
    torch.cuda.reset_peak_memory_stats()
    results = finetune_and_evaluate(str(teacher_with_head_dir), task, splits, config, seed=1, learning_rate=1e-4).metrics
    assert torch.cuda.max_memory_allocated() > 0  # it ran on the GPU
    assert 0.0 <= results[""]["accuracy"] <= 1.0


@cuda_only
def test_latency_is_measured_on_the_cpu_and_the_gpu(teacher_with_head_dir):
    speed = measure({"model": str(teacher_with_head_dir)}, [1, 4], seq_length=32, repeats=3, gpu=True)["model"]
    assert {"latency_ms_cpu_b1", "latency_ms_cuda_b1", "latency_ms_cuda_b4"} <= set(speed)
    assert all(value > 0 for key, value in speed.items() if key.startswith("latency"))


def test_compiled_encoders_train(prepared, tokenizer, tiny_teacher, tmp_path):
    student, _ = build_student(tiny_teacher, StudentConfig(), seed=0)
    logged = []
    trainer = Trainer(student, DistillationLoss(LossConfig()), _data(prepared, tokenizer, sequence_length=64),
                      _train_config(compile=True, max_steps=3, eval_every=100), Checkpoints(tmp_path, "k"),
                      teacher=tiny_teacher, callbacks=_logging_to(logged))
    trainer.run()
    batch = trainer.collator((0, prepared.split("train")[trainer.order.indices(0)]["input_ids"]))
    assert batch.micro_batches[0].input_ids.shape[1] == 64  # fixed shapes: compiled once
    assert all(math.isfinite(m["loss"]) for m in logged if "loss" in m)


@cuda_only
def test_training_steps_never_wait_for_the_gpu(prepared, tokenizer, tiny_teacher, tmp_path):
    """A padded batch (a prepared 4-d mask) and a full one (no mask): after a warm-up step, no optimizer step
    synchronises the host with the GPU (torch raises on the first operation that would)."""
    from datasets import Dataset

    generator = torch.Generator().manual_seed(0)
    full_length = Dataset.from_dict({"input_ids": torch.randint(1000, 2000, (64, 32), generator=generator).tolist()})
    for name, sequences in (("padded", prepared.split("train")), ("full", full_length)):
        student, _ = build_student(tiny_teacher, StudentConfig(), seed=0)
        trainer = Trainer(student, DistillationLoss(LossConfig()), _data(prepared, tokenizer, train=sequences),
                          _train_config(), Checkpoints(tmp_path / name, "k"), teacher=tiny_teacher)
        batches = [batch for batch, _ in trainer.batches(0, 3)]  # pinned, as the loop gets them
        assert {micro.padded for batch in batches for micro in batch.micro_batches} == {name == "padded"}
        trainer.optimizer_step(batches[0])  # warm-up: lazy initialisation may synchronise once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for batch in batches[1:]:
                trainer.optimizer_step(batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        torch.cuda.synchronize()
