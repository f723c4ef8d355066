"""A task's inputs pinned by DVC, as the pipeline pins its own (ops/dvc.pin_sources): the task's data files (or its
Hub dataset) and its teacher classifier are copied into data/tasks/NAME/ by `dvc import-url` (a Hub
repository: a snapshot and `dvc add`), their md5 in the .dvc files beside them. The task then reads those copies
(`pinned`), so the stage task@NAME depends on that one folder, a changed file or teacher is copied again by
the next pin and seen by `dvc status`, and the report names the versions it used.

The user's own files are only read: DVC copies them, it never moves or deletes them.
"""

from __future__ import annotations

from pathlib import Path

from distilflow.config import DataSourceConfig, Params, TaskConfig, VersioningConfig
from distilflow.errors import DistilflowError
from distilflow.ops.dvc import pin_sources, source_hashes

# Where each task's inputs are pinned: data/tasks/<task>/, beside the pipeline's pinned inputs (dvc.yaml's task stage
# depends on that folder)
TASKS_PATH = Path("data/tasks")

# Pinned from a Hub model: what from_pretrained reads (not other frameworks' weights, ONNX copies, images)
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "pytorch_model.bin"]


def pinned(name: str, config: TaskConfig) -> TaskConfig:
    """The same task read from its pinned copies: data/tasks/NAME/<split><suffix> for files (or the Hub dataset's
    snapshot, data/), and the teacher classifier's, teacher/."""
    folder = TASKS_PATH / name
    if config.data.files:
        data = config.data.model_copy(update={"files": {split: folder / f"{split}{file.suffix.lower()}"
                                                        for split, file in config.data.files.items()}})
    else:
        data = config.data.model_copy(update={"hub": str(folder / "data")})
    return config.model_copy(update={"data": data, "teacher_classifier": str(folder / "teacher")})


def task_sources(name: str, config: TaskConfig) -> dict[str, DataSourceConfig]:
    """{source name: where it comes from and where its pinned copy goes}: each data file, or the Hub dataset, and
    the teacher classifier."""
    copies = pinned(name, config)
    if config.data.files:
        sources = {split: DataSourceConfig(path=copies.data.files[split], url=str(file))
                   for split, file in config.data.files.items()}
    else:
        sources = {"data": _origin(config.data.hub, Path(copies.data.hub), "dataset")}
    return sources | {"teacher": _origin(config.teacher_classifier, Path(copies.teacher_classifier), "model")}


def _origin(name: str, path: Path, kind: str) -> DataSourceConfig:
    """A local folder (or its copy in the offline Hub mirror) is imported; a Hub id is downloaded."""
    from distilflow.base.pretrained import resolve  # imports torch: only when pinning

    local = resolve(name)
    if Path(local).exists():
        return DataSourceConfig(path=path, url=local)
    return DataSourceConfig(path=path, hub=name, hub_type=kind, include=MODEL_FILES if kind == "model" else None)


def pin_task(name: str, config: TaskConfig) -> dict[str, str]:
    """Copy the task's inputs in (again only where they changed); {source: md5}."""
    if not Path(".dvc").is_dir():
        raise DistilflowError(f"task {name}: {Path.cwd()} is not a DVC project (no .dvc/), so its data and teacher "
                              "cannot be pinned: run distilflow in the project's clone (or `git init && dvc init` here)")
    missing = [str(file) for file in config.data.files.values() if not file.is_file()]
    if missing:
        raise DistilflowError(f"task {name}: data file {missing[0]} not found: fix tasks.{name}.data.files "
                              "(paths relative to the project)")
    return pin_sources(VersioningConfig(sources=task_sources(name, config)))


def pinned_versions(name: str, config: TaskConfig) -> dict[str, str]:
    """{source: md5} of the pinned copies the task reads; one line when they are not there yet."""
    sources = task_sources(name, config)
    versions = source_hashes(VersioningConfig(sources=sources))
    if set(versions) != set(sources):
        raise DistilflowError(f"task {name}: its data and teacher are not pinned yet ({TASKS_PATH / name}): run "
                              f"`distilflow task {name}` or `distilflow pin`, which pin them")
    return versions


def pin_inputs(params: Params) -> dict[str, str]:
    """Everything the stages read, pinned (`distilflow pin`, the pipeline's pin step): the pipeline's sources
    ({source: md5}) and every task's of params.yaml's tasks: ({task.source: md5})."""
    tasks = {f"{name}.{source}": md5 for name, config in params.tasks.items()
             for source, md5 in pin_task(name, config).items()}
    return pin_sources(params.versioning) | tasks
