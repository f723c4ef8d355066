"""Shared fixtures: real tokenizer and text from ../shared, tiny random BERTs built here for speed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; a bare GPU machine gets a slice of it (bench/gpu/bundle.sh).
SHARED = Path(os.environ.get("DISTILFLOW_SHARED", ROOT.parent / "shared"))
HUB = SHARED / "hub"
CORPUS = SHARED / "data" / "corpus"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
MINILM = HUB / MINILM_ID

if not MINILM.is_dir():  # one line instead of a failing test per use of the tokenizer or corpus
    pytest.exit(f"the tests read real text and a tokenizer from ../shared, not found at {SHARED} (looked for {MINILM}): "
                "put the shared data beside the checkout or set DISTILFLOW_SHARED", returncode=2)
# Before transformers and huggingface_hub are imported: they read these once, at import (set later, a
# Hub id that is not found would be retried over the network with back-off, 23 s per test).
os.environ.setdefault("DISTILFLOW_HUB_MIRROR", str(HUB))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests are hermetic: everything comes from ../shared
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")
# One thread per process: two xdist workers on two cores, each with its stage processes, servers and torchrun
# ranks (which inherit this); two threads each oversubscribed the cores (measured 12-06 on four of the
# heaviest files: 134 s wall and 248 CPU-s with two threads, 87 s and 154 CPU-s with one).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")  # else each dvc command starts a daemon that reports home

import torch  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM, BertModel  # noqa: E402

from distilflow.config import CorpusSource, DataConfig, Params  # noqa: E402
from distilflow.config.load import validate_params  # noqa: E402



def tiny_bert_config(vocab_size: int, layers: int = 4) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)


@pytest.fixture(autouse=True)
def _distilflow_logger_as_it_was():
    """A command run in-process sets up its handlers (cli/logs.py): the next test starts from the library's state."""
    import logging

    logger = logging.getLogger("distilflow")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved
    os.environ.pop("DISTILFLOW_LOG_LEVEL", None)


@pytest.fixture(autouse=True)
def _no_ambient_tracking_uri(monkeypatch):
    """Runs log to the store their params name, never to one this shell's MLFLOW_TRACKING_URI points at."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


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


def tiny_data_config(corpus: Path, **overrides) -> DataConfig:
    """The small corpus as DataConfig: its .txt files to train on, its held-out .raw files as the test split."""
    values = dict(train=CorpusSource(files=[str(corpus / "*.txt")]),
                  test=CorpusSource(files=[str(corpus / "heldout" / "*.raw")]),
                  max_seq_length=32, min_seq_length=8, validation_fraction=0.1)
    return DataConfig(**{**values, **overrides})


def tiny_params(tmp_path: Path, corpus: Path, teacher: str | Path, **sections) -> dict:
    """A raw params dict for a run that takes seconds: tiny model, short sequences, few steps."""
    train = {"max_steps": 6, "micro_batch_size": 4, "gradient_accumulation_steps": 2, "learning_rate": 1e-3,
             "log_every": 2, "eval_every": 4, "eval_sequences": 8, "checkpoint_every": 2, "warmup_fraction": 0.2,
             "group_by_length": False}
    raw = {
        "teacher": {"model": str(teacher)},
        "data": {"train": {"files": [str(corpus / "*.txt")]}, "test": {"files": [str(corpus / "heldout" / "*.raw")]},
                 "max_seq_length": 32, "min_seq_length": 8, "validation_fraction": 0.1,
                 "max_train_sequences": 200, "max_test_sequences": 16},
        # the tiny teacher has 4 layers (params.yaml unfreezes all 6 of all-MiniLM-L6-v2's)
        "head": {"enabled": True, "unfreeze_top_layers": 0,
                 "train": {**train, "max_steps": 8, "learning_rate": 3e-2, "eval_sequences": 64}},
        "student": {"n_layers": 2, "layers": "every_other"},
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


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """A new MLflow store, its tables made by MLflow (1-2 s of migrations): each test's store starts as a copy."""
    import mlflow

    path = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def make_params(tmp_path, small_corpus, headless_teacher_dir, empty_store):
    """Validated tiny params writing under tmp_path: a teacher (the head-less one unless given) and sections. Their
    store is a copy of an empty one (tests of a store that is not there yet build their params with tiny_params)."""
    store = tmp_path / "mlruns" / "mlflow.db"
    store.parent.mkdir(exist_ok=True)
    shutil.copyfile(empty_store, store)

    def make(teacher: str | Path | None = None, **sections) -> Params:
        return validate_params(tiny_params(tmp_path, small_corpus, teacher or headless_teacher_dir, **sections))

    return make


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    """An empty project as a user's clone is one: git and DVC initialised, the working directory."""
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def params(make_params) -> Params:
    return make_params()


@pytest.fixture
def in_store(params):
    """The test's MLflow store entered for its whole length, as a shell with MLFLOW_TRACKING_URI set would have
    it: the jobs log there, and the test reads what they logged with MLflow's own calls."""
    from distilflow.ops.tracking import Tracking

    with Tracking(params.tracking) as tracking:
        yield tracking


def save_tiny_student(folder: Path, tokenizer, seed: int) -> Path:
    """A random 1-layer student saved as a model folder distilflow wrote (its fingerprint names the seed)."""
    torch.manual_seed(seed)
    BertForMaskedLM(tiny_bert_config(len(tokenizer), layers=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "distilflow.json").write_text(json.dumps({"fingerprint": f"student-{seed}"}))
    return folder


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
    from distilflow.train.architecture import encoder_layers

    assert student.config.num_hidden_layers == len(teacher_layers)
    for student_index, teacher_index in enumerate(teacher_layers):
        s_layer, t_layer = encoder_layers(student)[1][student_index], encoder_layers(teacher)[1][teacher_index]
        teacher_params = dict(t_layer.named_parameters())
        for name, s_param in s_layer.named_parameters():
            assert torch.equal(s_param, teacher_params[name]), f"layer {student_index}: {name}"


def build_pipeline_project(folder: Path, corpus: Path, teacher: Path, glue: Path) -> Path:
    """A new project as a user's clone has it: dvc.yaml and the code it names, git and DVC initialised,
    tiny params whose pinned sources are tiny local data (RTE, a few dozen rows: each GLUE task adds a stage, a
    classifier export and half a minute; several tasks are tested where the stages are, not through whole runs)."""
    import yaml

    from distilflow.config.load import validate_params

    folder.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", folder)
    shutil.copytree(ROOT / "distilflow", folder / "distilflow", ignore=shutil.ignore_patterns("__pycache__"))
    raw = tiny_params(folder, corpus, "data/teacher")
    raw["data"]["train"]["files"] = ["data/corpus/*.txt"]
    raw["data"]["test"]["files"] = ["data/corpus/heldout/*.raw"]
    raw.pop("paths")
    raw["tracking"] = {"system_metrics": False}
    raw["glue"] = {"source": "data/glue", "tasks": ["rte"], "epochs": 1, "batch_size": 8,
                   "max_seq_length": 32, "progress": False, "latency": {"batch_sizes": [1], "repeats": 1}}
    raw["export"] = {"latency": {"batch_sizes": [1], "repeats": 1}}
    raw["versioning"] = {"sources": {"corpus": {"path": "data/corpus", "url": str(corpus)},
                                     "glue": {"path": "data/glue", "url": str(glue)},
                                     "teacher": {"path": "data/teacher", "url": str(teacher)}}}
    raw["registry"] = {"model_name": "tiny-student", "promotion": {"min_retention": 0.0}}
    # DVC reads params.yaml itself, so every section dvc.yaml names must be written out, defaults included.
    (folder / "params.yaml").write_text(yaml.safe_dump(validate_params(raw).model_dump(mode="json")))
    shutil.copy(ROOT / ".gitignore", folder)  # artifacts/, mlruns/: never in git, nor in a DVC experiment's commit
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                    [sys.executable, "-m", "dvc", "remote", "add", "-d", "local", str(folder.parent / "remote")],
                    ["git", "add", "-A"], ["git", "-c", "user.name=test", "-c", "user.email=test@example.com",
                                           "commit", "-q", "-m", "a new project"]):
        subprocess.run(command, cwd=folder, check=True)
    return folder


def fresh_user_environment(home: Path) -> dict[str, str]:
    """What a new user's shell has: the environment's bin on PATH, and an empty HOME, Prefect home and
    cache; none of this process's settings (no Prefect harness, no tracking URI, no Hub mirror)."""
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
           "HOME": str(home), "PREFECT_HOME": str(home / ".prefect"), "XDG_CACHE_HOME": str(home / ".cache")}
    home.mkdir(parents=True)
    return env


@pytest.fixture(scope="session")
def first_contact(tmp_path_factory, small_corpus, headless_teacher_dir):
    """`distilflow pipeline`, the console script, run once in a new tiny project as a new user's machine
    runs it: a subprocess with an empty HOME, PREFECT_HOME, cache and tracking store, Prefect's own
    temporary server (no test harness). Returns (project, the finished process). Tests that run the
    pipeline further share this project: building it is the expensive part."""
    root = tmp_path_factory.mktemp("first_contact")
    project = build_pipeline_project(root / "project", small_corpus, headless_teacher_dir,
                                     tiny_glue_release(root / "glue"))
    done = subprocess.run([str(Path(sys.executable).parent / "distilflow"), "pipeline"], cwd=project,
                          env=fresh_user_environment(root / "home"), capture_output=True, text=True, timeout=900)
    return project, done


# Run in two processes (`pytest -n 2 --dist loadfile`, the Makefile's test command): most of the suite's time is
# processes starting (stages, servers, torchrun) and waiting, which two workers overlap. A file's tests stay in one
# worker (its module fixtures, a tracking server or the one pipeline project, are built once), and the longest
# files are handed out first so that no worker is left with one at the end (--no-loadscope-reorder: else xdist
# hands out the files with the most tests first, and test_flows.py, the longest, would start last).
LONGEST_FIRST = ("tests/test_flows.py", "tests/evaluation/test_task_distillation.py", "tests/train/test_distributed.py",
                 "tests/test_dvc_yaml.py", "tests/test_fault_injection.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::")[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file is kept

