"""The core steps as plain functions: prepare -> teacher head (when needed) -> distill.

The CLI calls these directly; Prefect tasks (tasks/) wrap the same functions. Each step reuses its
previous output when its inputs' fingerprint is unchanged, and logs to MLflow.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from distilflow import runtime, tracking
from distilflow.checkpoint import checkpoint_to_resume, clear_checkpoints, list_checkpoints
from distilflow.config import LossConfig, Params, fingerprint
from distilflow.distributed import main_process_first, process_group
from distilflow.errors import DistilflowError
from distilflow.evaluation import masked_lm_metrics
from distilflow.glue import glue_score
from distilflow.glue_eval import TaskResult, evaluate_task, model_key, retention, select_tasks, write_report
from distilflow.losses import DistillationLoss
from distilflow.masking import build_masker
from distilflow.prepare import META_FILE, PreparedData, prepare_corpus
from distilflow.sources import load_masked_lm, load_tokenizer, model_fingerprint
from distilflow.speed import measure
from distilflow.student import build_student, count_parameters
from distilflow.teacher_head import freeze_all_but_head, missing_head_weights, require_head_or_training
from distilflow.trainer import Trainer, pick_autocast_dtype, pick_device

ARTIFACT_META = "distilflow.json"


@dataclass(frozen=True)
class ResumePolicy:
    """What to do with checkpoints left by an earlier run (see Trainer.start)."""

    resume: bool = False
    restart: bool = False
    discard_stale: bool = False


@dataclass
class TeacherArtifact:
    path: str  # what to pass to from_pretrained: the original source, or the folder with the trained head
    fingerprint: str
    head_trained: bool
    metrics: dict[str, float]


@dataclass
class DistillResult:
    student_path: Path
    run_id: str
    metrics: dict[str, float]
    teacher_layers: list[int]


def prepare(params: Params) -> PreparedData:
    refuse_foreign_folder(params.paths.prepared, META_FILE)
    tokenizer = load_tokenizer(params.teacher.model)
    with main_process_first(process_group()):  # under torchrun one process tokenizes, the others read it
        return prepare_corpus(params.data, tokenizer, params.paths.prepared)


def prepare_stage(params: Params) -> PreparedData:
    """prepare, recorded in an MLflow run (nested under the pipeline's): what was built from what."""
    with tracking.mlflow_run(params.tracking, "prepare", tags={"stage": "prepare"}):
        prepared = prepare(params)
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "data": params.data.model_dump(mode="json")})
        tracking.set_tags({"data_fingerprint": prepared.fingerprint})
        tracking.log_metrics({f"sequences_{split}": count for split, count in prepared.meta["sequences"].items()})
    return prepared


def teacher_with_head(params: Params, prepared: PreparedData, policy: ResumePolicy = ResumePolicy()) -> TeacherArtifact:
    """The teacher as a complete masked-LM in paths.teacher: a copy if it has a head, else with a trained head.

    Always writing the folder gives DVC and later stages one teacher to depend on and hash.
    """
    torch.manual_seed(params.head.train.seed)  # a missing head is initialised randomly on load: reproducibly
    teacher, missing = load_masked_lm(params.teacher.model, role="teacher")
    missing_head = missing_head_weights(teacher, missing)
    output = params.paths.teacher
    refuse_foreign_folder(output, ARTIFACT_META)  # before any training, not after
    cached = _read_artifact_meta(output)
    if not missing_head:
        key = fingerprint("teacher-v1", model_fingerprint(teacher))
        if cached.get("key") != key:
            save_model(teacher, load_tokenizer(params.teacher.model), output,
                       {"key": key, "fingerprint": model_fingerprint(teacher), "source": params.teacher.model,
                        "head_trained": False, "metrics": {}})
            cached = _read_artifact_meta(output)
        return TeacherArtifact(str(output), cached["fingerprint"], head_trained=False, metrics={})
    require_head_or_training(params.teacher.model, missing_head, params.head.enabled)

    # The encoder is what was loaded; the head is random, so fingerprint the encoder only.
    encoder_fingerprint = model_fingerprint(teacher.base_model)
    # Uniform masking for the head (BERT's pre-training recipe): smoothing would skew it to rare words.
    head_masking = params.masking.model_copy(update={"smoothing": 0.0})
    key = fingerprint("head-v1", encoder_fingerprint, prepared.fingerprint,
                      params.head.model_dump(mode="json"), head_masking.model_dump(mode="json"))
    if cached.get("key") == key:
        return TeacherArtifact(str(output), cached["fingerprint"], head_trained=True, metrics=cached["metrics"])

    tokenizer = load_tokenizer(params.teacher.model)
    trainable = freeze_all_but_head(teacher, params.head.unfreeze_top_layers)
    masker = build_masker(head_masking, tokenizer)
    held_out = prepared.split("test") if (prepared.path / "test").exists() else prepared.split("validation")
    train_cfg = params.head.train

    group = process_group()
    device = group.device(pick_device(train_cfg.device))

    def held_out_metrics(model) -> dict[str, float]:
        return masked_lm_metrics(model.to(device), held_out, tokenizer, max_sequences=train_cfg.eval_sequences,
                                 device=device, autocast_dtype=pick_autocast_dtype(train_cfg.precision, device))

    checkpoints = params.paths.checkpoints / "teacher_head"
    checkpoint_to_resume(checkpoints, policy.resume, policy.restart)  # refuse before an MLflow run is opened
    with tracking.mlflow_run(params.tracking, "teacher-head", run_id=_resumable_run_id(checkpoints, policy.resume, key),
                             tags={"stage": "teacher_head", "data_fingerprint": prepared.fingerprint,
                                   "teacher_encoder_fingerprint": encoder_fingerprint}, enabled=group.is_main) as run:
        if group.is_main:
            _remember_run_id(checkpoints, run.info.run_id, key)
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "head": params.head.model_dump(mode="json"),
                             "masking": params.masking.model_dump(mode="json"),
                             "data": {"fingerprint": prepared.fingerprint}, "head_trainable_parameters": trainable})
        before = held_out_metrics(teacher)
        trainer = Trainer(teacher, DistillationLoss(_mlm_only()), masker, prepared.split("train"),
                          prepared.split("validation"), tokenizer, train_cfg, checkpoints, run_key=key,
                          log_metrics=tracking.log_metrics, description="teacher head",
                          batch_split=runtime.batch_split(), sequence_length=params.data.max_seq_length, group=group)
        trainer.run(resume=policy.resume, restart=policy.restart, discard_stale=policy.discard_stale)
        after = held_out_metrics(teacher)
        metrics = {**{f"heldout_{k}_before": v for k, v in before.items()},
                   **{f"heldout_{k}_after": v for k, v in after.items()}}
        tracking.log_metrics(metrics)
        teacher_fingerprint = model_fingerprint(teacher)
        if group.is_main:
            save_model(teacher.cpu(), tokenizer, output, {"key": key, "fingerprint": teacher_fingerprint,
                                                           "source": params.teacher.model, "head_trained": True,
                                                           "metrics": metrics, "mlflow_run_id": run.info.run_id})
            tracking.log_artifacts(output, artifact_path="teacher_with_head")
            clear_checkpoints(checkpoints)  # the saved artifact supersedes them; a later run starts clean
    group.barrier()
    return TeacherArtifact(str(output), teacher_fingerprint, head_trained=True, metrics=metrics)


def distill(params: Params, policy: ResumePolicy = ResumePolicy()) -> DistillResult:
    """prepare -> teacher head if needed -> distill the student."""
    prepared = prepare(params)
    teacher_artifact = teacher_with_head(params, prepared, policy)
    return distill_student(params, prepared, teacher_artifact, policy)


def distill_student(params: Params, prepared: PreparedData, teacher_artifact: TeacherArtifact,
                    policy: ResumePolicy = ResumePolicy()) -> DistillResult:
    """Build the student from the (head-complete) teacher and distil it, tracked in one MLflow run."""
    refuse_foreign_folder(params.paths.student, ARTIFACT_META)  # before any training, not after
    teacher, _ = load_masked_lm(teacher_artifact.path, role="teacher")
    tokenizer = load_tokenizer(teacher_artifact.path)
    student, layers = build_student(teacher, params.student, seed=params.distill.train.seed)
    masker = build_masker(params.masking, tokenizer, prepared.token_counts())
    run_key = fingerprint("distill-v1", teacher_artifact.fingerprint, prepared.fingerprint,
                          params.student.model_dump(mode="json"), params.masking.model_dump(mode="json"),
                          params.distill.model_dump(mode="json"))
    checkpoints = params.paths.checkpoints / "distill"
    checkpoint_to_resume(checkpoints, policy.resume, policy.restart)
    group = process_group()
    tags = {"stage": "distill", "data_fingerprint": prepared.fingerprint,
            "teacher_fingerprint": teacher_artifact.fingerprint, "teacher_head_trained": str(teacher_artifact.head_trained)}
    with tracking.mlflow_run(params.tracking, "distill", run_id=_resumable_run_id(checkpoints, policy.resume, run_key),
                             tags=tags, enabled=group.is_main) as run:
        if group.is_main:
            _remember_run_id(checkpoints, run.info.run_id, run_key)
        tracking.log_params({**params.model_dump(mode="json"),
                             "resolved": {"teacher_source": teacher_artifact.path, "teacher_layers": layers,
                                          "data_fingerprint": prepared.fingerprint,
                                          "teacher_parameters": count_parameters(teacher),
                                          "student_parameters": count_parameters(student),
                                          "processes": group.world_size,
                                          **{f"sequences_{k}": v for k, v in prepared.meta["sequences"].items()}}})
        trainer = Trainer(student, DistillationLoss(params.distill.loss), masker, prepared.split("train"),
                          prepared.split("validation"), tokenizer, params.distill.train, checkpoints,
                          run_key=run_key, teacher=teacher, log_metrics=tracking.log_metrics, description="distill",
                          batch_split=runtime.batch_split(), sequence_length=params.data.max_seq_length, group=group)
        result = trainer.run(resume=policy.resume, restart=policy.restart, discard_stale=policy.discard_stale)
        metrics = dict(result.validation)
        if group.is_main and (prepared.path / "test").exists():
            test = masked_lm_metrics(trainer.model, prepared.split("test"), tokenizer,
                                     teacher=trainer.teacher, device=trainer.device,
                                     autocast_dtype=trainer.autocast_dtype)
            metrics.update({f"test_{k}": v for k, v in test.items()})
            tracking.log_metrics({f"test_{k}": v for k, v in test.items()})
        student_fingerprint = model_fingerprint(student)
        tracking.set_tags({"student_fingerprint": student_fingerprint})
        if group.is_main:
            save_model(student.cpu(), tokenizer, params.paths.student,
                       {"key": run_key, "fingerprint": student_fingerprint, "teacher_layers": layers,
                        "teacher_fingerprint": teacher_artifact.fingerprint, "metrics": metrics,
                        "mlflow_run_id": run.info.run_id})
            tracking.log_artifacts(params.paths.student, artifact_path="student")
    if group.is_main:
        clear_checkpoints(checkpoints)
        _write_json(params.paths.metrics / "distill.json", metrics)
    group.barrier()
    return DistillResult(params.paths.student, run.info.run_id, metrics, layers)


def evaluate(model_name: str, params: Params, teacher_name: str | None = None, split: str = "test",
             max_sequences: int | None = None) -> dict[str, float]:
    """Held-out masked-LM metrics of any MLM (and its agreement with a teacher) on a prepared split."""
    prepared = prepare(params)
    if not (prepared.path / split).exists():
        raise DistilflowError(f"prepared data has no '{split}' split: set data.test in params.yaml or use --split validation")
    model, missing = load_masked_lm(model_name, role="model")
    if missing_head_weights(model, missing):
        raise DistilflowError(f"model '{model_name}' has no masked-LM head: evaluate a folder with a trained head")
    teacher = load_masked_lm(teacher_name, role="teacher")[0].eval() if teacher_name else None
    tokenizer = load_tokenizer(model_name)
    train_cfg = params.distill.train  # the device and precision that distillation uses
    device = pick_device(train_cfg.device)
    return masked_lm_metrics(model.to(device), prepared.split(split), tokenizer,
                             teacher=teacher.to(device) if teacher is not None else None, max_sequences=max_sequences,
                             device=device, autocast_dtype=pick_autocast_dtype(train_cfg.precision, device))


def glue(params: Params, model_name: str, teacher_name: str | None = None,
         tasks: str | list[str] | None = None) -> dict:
    """Fine-tune `model_name` (and the teacher, as the cached baseline) on GLUE; report and log it."""
    selected = _selected_tasks(params, tasks)
    roles = {"student": model_name, "teacher": teacher_name} if teacher_name else {"model": model_name}
    with tracking.mlflow_run(params.tracking, "glue", tags={"stage": "glue", "model": model_name,
                                                             "teacher": teacher_name or ""}) as parent:
        tracking.log_params({"glue": params.glue.model_dump(mode="json"), "model": model_name,
                             "teacher": teacher_name or "", "tasks": ",".join(task.name for task in selected)})
        results = {role: {} for role in roles}
        for task in selected:
            for role, name in roles.items():
                results[role][task.name] = _glue_task_run(params, role, name, task, nested=True)
        return _glue_report(params, roles, results, parent.info.run_id)


def glue_task(params: Params, task_name: str) -> dict:
    """Pipeline stage: one GLUE task for the student and the teacher baseline -> paths.glue/tasks/<task>.json."""
    task = _selected_tasks(params, [task_name])[0]
    results = {role: asdict(_glue_task_run(params, role, name, task))
               for role, name in _pipeline_roles(params).items()}
    _write_json(params.paths.glue / "tasks" / f"{task.name}.json", results)
    return results


def glue_report(params: Params) -> dict:
    """Pipeline stage: the student-vs-teacher report from the per-task results of `glue_task`."""
    roles = _pipeline_roles(params)
    results: dict[str, dict[str, TaskResult]] = {role: {} for role in roles}
    for task in _selected_tasks(params, None):
        path = params.paths.glue / "tasks" / f"{task.name}.json"
        if not path.is_file():
            raise DistilflowError(f"no GLUE result for '{task.name}' at {path}: run `distilflow glue-task {task.name}` first")
        for role, result in json.loads(path.read_text()).items():
            results[role][task.name] = TaskResult(**result)
    with tracking.mlflow_run(params.tracking, "glue report", tags={"stage": "glue_report"}) as run:
        return _glue_report(params, roles, results, run.info.run_id)


def _pipeline_roles(params: Params) -> dict[str, str]:
    # The baseline is the teacher as users have it (params.teacher.model), not the copy with a trained head.
    return {"student": str(params.paths.student), "teacher": params.teacher.model}


def _selected_tasks(params: Params, tasks: str | list[str] | None) -> list:
    selected = select_tasks(params.glue, tasks)
    if not selected:
        raise DistilflowError(f"no GLUE task to run from {params.glue.source}: check glue.tasks and glue.source")
    return selected


def _glue_task_run(params: Params, role: str, model_name: str, task, nested: bool = False) -> TaskResult:
    """Fine-tune one model on one task in its own MLflow run (same metric names in every run for the UI)."""
    key = model_key(model_name)
    with tracking.mlflow_run(params.tracking, f"{role} {task.name}", nested=nested,
                             tags={"stage": "glue_task", "role": role, "task": task.name, "model": model_name,
                                   "model_fingerprint": key}):
        tracking.log_params({"task": task.name, "model": model_name, "role": role})
        tracking.log_params({"glue": params.glue.model_dump(mode="json", exclude={"tasks"})})
        result = evaluate_task(model_name, key, task, params.glue, params.paths.glue / "cache")
        tracking.log_params({"selected_learning_rate": result.learning_rate})
        tracking.log_metrics({"score": result.score, **result.flat_metrics()})
    return result


def _glue_report(params: Params, roles: dict[str, str], results: dict[str, dict[str, TaskResult]],
                 run_id: str) -> dict:
    """Scores, GLUE score, retention, size and speed of each model; logged to the active run and written."""
    config = params.glue
    tasks = list(next(iter(results.values())))
    report: dict = {"tasks": tasks, "settings": config.model_dump(mode="json"), "models": {}}
    for role, name in roles.items():
        speed = measure(name, config.latency.batch_sizes, config.latency.seq_length, config.latency.repeats,
                        gpu=pick_device(config.device).type == "cuda")
        scores = {task: result.score for task, result in results[role].items()}
        report["models"][role] = {"source": name, "fingerprint": model_key(name), "scores": scores,
                                  "metrics": {task: result.flat_metrics() for task, result in results[role].items()},
                                  "glue_score": glue_score(scores), "speed": speed}
    summary = {f"{role}_{name}": value for role, result in report["models"].items()
               for name, value in result["speed"].items()}
    summary.update({f"{role}_glue_score": result["glue_score"] for role, result in report["models"].items()})
    summary.update({f"{role}_{task}_score": score for role, result in report["models"].items()
                    for task, score in result["scores"].items()})
    if "teacher" in report["models"]:
        student, teacher = report["models"]["student"], report["models"]["teacher"]
        report["retention"] = retention(student["scores"], teacher["scores"])
        report["glue_retention"] = student["glue_score"] / teacher["glue_score"]
        report["speedup"] = {key.removeprefix("latency_ms_"): teacher["speed"][key] / student["speed"][key]
                             for key in student["speed"] if key.startswith("latency_ms_")}
        report["parameter_ratio"] = student["speed"]["parameters"] / teacher["speed"]["parameters"]
        summary["glue_retention"] = report["glue_retention"]
        summary.update({f"{task}_retention": value for task, value in report["retention"].items()})
        summary.update({f"speedup_{key}": value for key, value in report["speedup"].items()})
    tracking.log_metrics(summary)
    report["mlflow_run_id"] = run_id
    files = write_report(report, params.paths.glue, params.paths.metrics / "glue.json")
    for path in files.values():
        tracking.log_artifacts(path)
    report["files"] = {name: str(path) for name, path in files.items()}
    return report


def save_model(model, tokenizer, output: Path, meta: dict) -> None:
    """save_pretrained into a staging folder, then swap it in: never a half-written model folder."""
    refuse_foreign_folder(output, ARTIFACT_META)
    staging = output.with_name(output.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / ARTIFACT_META).write_text(json.dumps(meta, indent=2, default=str))
    previous = output.with_name(output.name + ".old")
    shutil.rmtree(previous, ignore_errors=True)
    if output.exists():
        output.rename(previous)
    staging.rename(output)
    shutil.rmtree(previous, ignore_errors=True)


def refuse_foreign_folder(folder: Path, marker: str) -> None:
    """distilflow replaces only folders it wrote (they hold `marker`): a paths.* key pointed at a user's
    folder must never delete it."""
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / marker).is_file())):
        raise DistilflowError(
            f"'{folder}' exists and was not written by distilflow (no {marker} in it): point the paths.* key at "
            "a new folder or one distilflow made; nothing was deleted"
        )


def _write_json(path: Path, content: dict) -> None:
    """Write via a temporary file and rename, so a reader (or DVC) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(content, indent=2, default=str))
    partial.replace(path)


def _read_artifact_meta(folder: Path) -> dict:
    path = folder / ARTIFACT_META
    return json.loads(path.read_text()) if path.is_file() else {}


def _mlm_only() -> LossConfig:
    return LossConfig(alpha_ce=0.0, alpha_mlm=1.0, alpha_cos=0.0, alpha_mse=0.0)


def _run_file(checkpoints: Path) -> Path:
    return checkpoints / "mlflow_run_id"


def _remember_run_id(folder: Path, run_id: str, run_key: str) -> None:
    _run_file(folder).parent.mkdir(parents=True, exist_ok=True)
    _run_file(folder).write_text(f"{run_id} {run_key}")


def _resumable_run_id(folder: Path, resume: bool, run_key: str) -> str | None:
    """With --resume, continue the MLflow run that wrote the checkpoints (same params and data), so its
    curves stay one run."""
    path = _run_file(folder)
    if not (resume and path.is_file() and list_checkpoints(folder)):
        return None
    run_id, _, key = path.read_text().strip().partition(" ")
    return run_id if key == run_key else None
