"""Fine-tune any encoder on one GLUE task with the standard recipe (transformers' Trainer).

Sequence-classification head (regression for STS-B), dynamic padding, AdamW with warmup and linear
decay; the model is evaluated on the task's dev set(s) with the official metrics. With a teacher's soft
targets, the student learns from them too (task_distillation.py). Given a checkpoint folder, a fine-tuning
that was stopped resumes where it was (the Trainer's own checkpoints: weights, optimizer, schedule, RNG and
the place in the epoch), so a 10-epoch teacher on CoLA can outlast a session.
"""

from __future__ import annotations

import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import get_last_checkpoint

from distilflow.base.devices import pick_device
from distilflow.base.model_folder import save_model
from distilflow.base.pretrained import load_pretrained, load_tokenizer
from distilflow.config import GlueConfig
from distilflow.evaluation.glue_data import SELECTION, GlueTask, compute_metrics
from distilflow.evaluation.task_distillation import TEACHER_COLUMN, TaskDistillationTrainer


@dataclass
class FineTuned:
    metrics: dict[str, dict[str, float]]  # evaluation name ('' or 'm'/'mm') -> official metric -> value
    train_logits: np.ndarray | None = None  # the fine-tuned model's predictions on the training set


def finetune_and_evaluate(model_name: str, task: GlueTask, splits: dict[str, Dataset], config: GlueConfig,
                          seed: int, learning_rate: float, soft_targets: np.ndarray | None = None,
                          predict_train: bool = False, save_to: Path | None = None,
                          checkpoints: Path | None = None, checkpoint_every: int = 100) -> FineTuned:
    """Train on splits['train'] (with the teacher's `soft_targets` for it, row by row, when given) and
    evaluate on the task's dev set(s); `predict_train` also returns the logits on the training set (a
    teacher's soft targets), `save_to` keeps the fine-tuned classifier. With `checkpoints` (a folder the
    caller owns and clears), the state is saved there every `checkpoint_every` steps and a run finds and
    resumes the last one."""
    tokenizer = load_tokenizer(model_name)
    # The classifier (and a student's pooler) start random: from this run's seed, not from whatever state the
    # process's RNG is in (that left the student's GLUE scores varying from run to run).
    set_seed(seed)
    model = _classifier(model_name, task)
    encoded = {name: _encode(split, task, tokenizer, config.max_seq_length) for name, split in splits.items()}
    if soft_targets is not None:
        encoded["train"] = encoded["train"].add_column(TEACHER_COLUMN, soft_targets.tolist())
    on_gpu = pick_device(config.device).type == "cuda"
    with nullcontext(str(checkpoints)) if checkpoints else tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.eval_batch_size,
            learning_rate=learning_rate,
            num_train_epochs=config.epochs,
            warmup_steps=config.warmup_fraction,  # a float below 1 is a fraction of all steps
            weight_decay=config.weight_decay,
            lr_scheduler_type="linear",
            seed=seed,
            data_seed=seed,
            use_cpu=not on_gpu,
            bf16=on_gpu,
            eval_strategy="no",
            save_strategy="steps" if checkpoints else "no",
            save_steps=checkpoint_every,
            save_total_limit=1,  # the last one is all a resume needs
            logging_strategy="no",
            report_to="none",
            disable_tqdm=not config.progress,
            dataloader_num_workers=0,
            dataloader_pin_memory=on_gpu,
            # Not "group_by_length": with transformers 5.23 it left dev predictions at chance level
            # (SST-2 49.8% vs 79.9% with the random sampler, same everything else; docs/results.md).
            train_sampling_strategy="random",
            # the teacher's logits are not an argument of the model's forward: keep them for the loss
            remove_unused_columns=soft_targets is None,
        )
        common = {"model": model, "args": args, "train_dataset": encoded["train"],
                  "data_collator": DataCollatorWithPadding(tokenizer), "processing_class": tokenizer}
        if soft_targets is None:
            trainer = Trainer(**common)
        else:
            distillation = config.distillation
            trainer = TaskDistillationTrainer(**common, weight=distillation.weight,
                                              temperature=distillation.temperature, regression=task.is_regression)
        trainer.train(resume_from_checkpoint=_last_checkpoint(checkpoints))
        results = {}
        for name in [*task.evaluations, *([SELECTION] if SELECTION in splits else [])]:
            output = trainer.predict(encoded[name])
            results[name] = compute_metrics(task, output.predictions, np.asarray(splits[name]["label"]))
        train_logits = None
        if predict_train:
            train_logits = np.asarray(trainer.predict(encoded["train"].remove_columns(["labels"])).predictions)
        if save_to is not None:
            save_model(trainer.model, tokenizer, save_to,
                       {"made_by": "glue", "task": task.name, "base_model": model_name, "seed": seed,
                        "learning_rate": learning_rate, "task_distillation": soft_targets is not None,
                        "dev_metrics": results})
    return FineTuned(results, train_logits)


def _last_checkpoint(folder: Path | None) -> str | None:
    return get_last_checkpoint(str(folder)) if folder is not None and folder.is_dir() else None


def _classifier(model_name: str, task: GlueTask):
    # "newly initialised classifier" is expected here, and silenced. Labels with names are named in its config, so
    # that a saved (and served) classifier answers with them.
    names = {"id2label": dict(enumerate(task.label_names)), "label2id": {name: i for i, name in enumerate(task.label_names)}}
    return load_pretrained(AutoModelForSequenceClassification, model_name, "model", num_labels=task.num_labels,
                           problem_type="regression" if task.is_regression else "single_label_classification",
                           **(names if task.label_names else {}))


def _encode(split: Dataset, task: GlueTask, tokenizer, max_length: int) -> Dataset:
    def tokenize(batch: dict) -> dict:
        texts = [batch[column] for column in task.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    keep = ["label"]
    encoded = split.map(tokenize, batched=True, remove_columns=[c for c in split.column_names if c not in keep])
    return encoded.rename_column("label", "labels")
