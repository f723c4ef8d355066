"""A few distillation steps of a tiny student, run by tests/train/test_distributed.py as 1 or 2 processes.

    python tests/train/distributed_job.py OUT MICRO_BATCH_SIZE           # one process
    torchrun --nproc_per_node=2 tests/train/distributed_job.py OUT MICRO  # two (gloo on CPU)
    ... OUT MICRO stop-at-2                                        # every process dies after step 2
    ... OUT MICRO resume                                           # continues from OUT's checkpoint

Rank 0 saves the final weights and the logged losses to OUT. Dropout is off, so the runs differ
only by how the global batch is split.
"""

import os
import sys
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

from distilflow.config import LossConfig, MaskingConfig, StudentConfig, TrainConfig
from distilflow.data.masking import build_masker
from distilflow.data.packing import tokenize_and_pack
from distilflow.train.loop_io import Callbacks, Checkpoints, TrainingData
from distilflow.train.losses import DistillationLoss
from distilflow.train.student import build_student
from distilflow.train.trainer import Trainer

# ../shared beside the checkout, or where $DISTILFLOW_SHARED says (a bare GPU machine: bench/gpu/bundle.sh)
SHARED = Path(os.environ.get("DISTILFLOW_SHARED", Path(__file__).resolve().parents[3] / "shared"))


def main(out: Path, micro_batch_size: int, how: str = "") -> None:
    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(SHARED / "hub" / "sentence-transformers" / "all-MiniLM-L6-v2")
    text = (SHARED / "data" / "corpus" / "gutenberg" / "austen-emma.txt").read_text(encoding="latin-1")
    sequences = tokenize_and_pack([p for p in text.split("\n\n")[:300] if p.strip()], tokenizer, 32)
    data = Dataset.from_dict({"input_ids": sequences})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    teacher = BertForMaskedLM(config).eval()
    student, _ = build_student(teacher, StudentConfig(), seed=0)
    train = TrainConfig(max_steps=3, micro_batch_size=micro_batch_size, gradient_accumulation_steps=1,
                        learning_rate=1e-3, warmup_fraction=0.0, log_every=1, eval_every=100, eval_sequences=4,
                        checkpoint_every=1, device="cpu", precision="fp32")
    losses = []
    trainer = Trainer(student, DistillationLoss(LossConfig()),
                      TrainingData(data, data.select(range(8)), build_masker(MaskingConfig(), tokenizer), tokenizer),
                      train, Checkpoints(out / "checkpoints", "ddp"), teacher=teacher,
                      callbacks=Callbacks(metrics=lambda metrics, step: losses.append(metrics.get("loss"))))
    if how.startswith("stop-at-"):
        stop_at, real_step = int(how.removeprefix("stop-at-")), Trainer.optimizer_step

        def dies(self, step_batch):
            if self.step == stop_at:
                raise SystemExit(3)  # as if the job were killed after the step-N checkpoint
            return real_step(self, step_batch)

        Trainer.optimizer_step = dies
    trainer.run(resume=how == "resume")
    if trainer.group.is_main:
        torch.save({"state": trainer.model.state_dict(), "losses": [x for x in losses if x is not None],
                    "world_size": trainer.group.world_size}, out / "result.pt")
    if trainer.group.is_distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])
