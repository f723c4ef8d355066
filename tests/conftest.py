"""Shared fixtures: real tokenizer and text from ../shared, tiny random BERTs built here for speed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; a bare GPU machine gets a slice of it (bench/gpu_bundle.sh).
SHARED = Path(os.environ.get("DISTILFLOW_SHARED", ROOT.parent / "shared"))
HUB = SHARED / "hub"
CORPUS = SHARED / "data" / "corpus"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM = HUB / MINILM_ID

os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(HUB))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests are hermetic: everything comes from ../shared
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
torch.set_num_threads(2)


def tiny_bert_config(vocab_size: int, layers: int = 4) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(MINILM)


@pytest.fixture(scope="session")
def tiny_teacher(tokenizer) -> BertForMaskedLM:
    torch.manual_seed(0)
    return BertForMaskedLM(tiny_bert_config(len(tokenizer))).eval()


@pytest.fixture(scope="session")
def headless_teacher_dir(tmp_path_factory, tokenizer) -> Path:
    """A tiny encoder saved without an MLM head, like all-MiniLM-L6-v2 or a classifier backbone."""
    folder = tmp_path_factory.mktemp("headless_teacher")
    torch.manual_seed(1)
    BertModel(tiny_bert_config(len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def teacher_with_head_dir(tmp_path_factory, tiny_teacher, tokenizer) -> Path:
    folder = tmp_path_factory.mktemp("teacher_with_head")
    tiny_teacher.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A few hundred paragraphs of real text: the start of Emma plus part of the Brown corpus."""
    folder = tmp_path_factory.mktemp("corpus")
    emma = (CORPUS / "gutenberg" / "austen-emma.txt").read_text(encoding="latin-1").splitlines()[:1500]
    brown = (CORPUS / "brown" / "brown.txt").read_text().splitlines()[:600]
    (folder / "emma.txt").write_text("\n".join(emma))
    (folder / "brown.txt").write_text("\n".join(brown))
    wiki = (CORPUS / "wikitext-2-raw" / "wiki.test.raw").read_text().splitlines()[:400]
    (folder / "heldout").mkdir()
    (folder / "heldout" / "wiki.test.raw").write_text("\n".join(wiki))
    return folder


def tiny_params(tmp_path: Path, corpus: Path, teacher: str | Path, **sections) -> dict:
    """A raw params dict for a run that takes seconds: tiny model, short sequences, few steps."""
    train = {"max_steps": 6, "micro_batch_size": 4, "gradient_accumulation_steps": 2, "learning_rate": 1e-3,
             "log_every": 2, "eval_every": 4, "eval_sequences": 8, "checkpoint_every": 2, "warmup_fraction": 0.2}
    raw = {
        "teacher": {"model": str(teacher)},
        "data": {"train": {"files": [str(corpus / "*.txt")]}, "test": {"files": [str(corpus / "heldout" / "*.raw")]},
                 "max_seq_length": 32, "min_seq_length": 8, "validation_fraction": 0.1,
                 "max_train_sequences": 200, "max_test_sequences": 16},
        "head": {"enabled": True, "train": {**train, "max_steps": 8, "learning_rate": 3e-2, "eval_sequences": 64}},
        "student": {"n_layers": 2},
        "distill": {"train": train},
        "paths": {name: str(tmp_path / name) for name in ("prepared", "teacher", "student", "checkpoints", "glue", "export",
                                                               "metrics")},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlruns/mlflow.db",
                     "artifact_root": str(tmp_path / "mlruns" / "artifacts"), "experiment": "test",
                     "system_metrics": False},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return raw


def tiny_glue_release(folder: Path) -> Path:
    """RTE and MRPC in the GLUE release layout, cut to a few dozen lines each."""
    for task in ("RTE", "MRPC"):
        (folder / task).mkdir(parents=True)
        for split, lines in (("train.tsv", 41), ("dev.tsv", 21)):
            text = (SHARED / "data" / "glue" / task / split).read_text(encoding="utf-8-sig").splitlines()[:lines]
            (folder / task / split).write_text("\n".join(text) + "\n")
    return folder


def run_stages(params, policy=None):
    """prepare -> teacher -> distill, as `dvc repro distill` runs them (each job on its own)."""
    from distilflow.jobs import distill, prepare, teacher
    from distilflow.train.resume import ResumePolicy

    policy = policy or ResumePolicy()
    prepare.run(params)
    teacher.run(params, policy)
    return distill.run(params, policy)


def assert_layers_copied(student, teacher, teacher_layers: list[int]) -> None:
    """Student layer i holds exactly the weights of teacher layer teacher_layers[i]."""
    assert student.config.num_hidden_layers == len(teacher_layers)
    for student_index, teacher_index in enumerate(teacher_layers):
        s_layer, t_layer = student.bert.encoder.layer[student_index], teacher.bert.encoder.layer[teacher_index]
        for (name, s_param), t_param in zip(s_layer.named_parameters(), t_layer.parameters(), strict=True):
            assert torch.equal(s_param, t_param), f"layer {student_index}: {name}"
