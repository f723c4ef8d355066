"""The MLflow Model Registry side: register a student once, aliases `challenger`/`champion`, promotion by
the rule (promotion_rule.py), manual promotion and rollback.

A version's tags carry what the rule and the `models` table need (GLUE score, retention, latency,
tasks, data hashes), so decisions never depend on files that may have moved since.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distilflow.base.files import exclusive
from distilflow.base.model_folder import MODEL_META
from distilflow.config import RegistryConfig
from distilflow.errors import DistilflowError
from distilflow.ops.promotion_rule import Decision, decide, scored_by
from distilflow.ops.tracking import Tracking

CHALLENGER, CHAMPION = "challenger", "champion"
HISTORY_TAG = "champion_history"  # on the registered model: champion versions, oldest first
FINGERPRINT_TAG = "student_fingerprint"
ATTACHED_TAG = "onnx_attached"  # the version's logged model holds the ONNX exports


def _client():
    import mlflow

    return mlflow.MlflowClient()


def _is_not_found(error: Exception) -> bool:
    """MLflow's answer for a model, version or alias that does not exist (and only that)."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException):
        return False
    return error.error_code == "RESOURCE_DOES_NOT_EXIST" or (
        error.error_code == "INVALID_PARAMETER_VALUE" and "not found" in error.message)


def find_version(name: str, student_fingerprint: str):
    """The version already registered for these exact student weights, if any."""
    for version in _client().search_model_versions(f"name='{name}'"):
        if version.tags.get(FINGERPRINT_TAG) == student_fingerprint:
            return version
    return None


def register_student(tracking: Tracking, config: RegistryConfig, student_dir: Path, run_id: str, tags: dict[str, str],
                     description: str = ""):
    """Register the student's LoggedModel (logged by its distill run; logged now into `run_id` if this
    store does not have it) as a new version with alias `challenger` and `description` as its model
    card. The same weights registered again return the existing version.

    Returns (version, created).
    """
    import mlflow

    student_dir = student_dir.resolve()  # a relative path would look like a Hub id to MLflow, which then asks the Hub
    meta = json.loads((student_dir / MODEL_META).read_text())
    diverged = {name: value for name, value in meta.get("metrics", {}).items() if not math.isfinite(value)}
    if diverged:  # distill refuses to save such a student; one written by an older distilflow is not registered
        raise DistilflowError(f"the student in {student_dir} diverged ({', '.join(f'{k} {v}' for k, v in diverged.items())}):"
                              " distil it again (`distilflow distill --restart`); nothing was registered")
    existing = _registered_before(config.model_name, meta["fingerprint"], description)
    if existing is not None:
        return existing, False
    model_id = meta.get("mlflow_model_id")
    if not tracking.logged_model_exists(model_id):  # distilled untracked, or into another store
        with mlflow.start_run(run_id=run_id):
            model_id = tracking.log_student_model(student_dir, config.input_example, config.top_k,
                                                  meta.get("metrics", {}))
    return register_logged_model(config.model_name, model_id, meta["fingerprint"], run_id, tags, description), True


def register_logged_model(name: str, model_id: str, fingerprint: str, run_id: str, tags: dict[str, str],
                          description: str = ""):
    """A logged model as a new version of `name`, alias challenger, its card `description`."""
    import mlflow

    version = mlflow.register_model(f"models:/{model_id}", name,
                                    tags={**tags, FINGERPRINT_TAG: fingerprint, "mlflow_run_id": run_id})
    if description:
        _client().update_model_version(name, version.version, description=description)
        mlflow.set_logged_model_tags(model_id, {"mlflow.note.content": description})
    _client().set_registered_model_alias(name, CHALLENGER, version.version)
    return version


def register_once(name: str, fingerprint: str, log_model, run_id: str, tags: dict[str, str], description: str = ""):
    """Register what `log_model()` logs (its model id) unless these weights are a version: (version, created)."""
    existing = _registered_before(name, fingerprint, description)
    if existing is not None:
        return existing, False
    return register_logged_model(name, log_model(), fingerprint, run_id, tags, description), True


def _registered_before(name: str, fingerprint: str, description: str):
    """The version of these weights, completed where a run died part-way (no card, no alias); None if none."""
    existing = find_version(name, fingerprint)
    if existing is None:
        return None
    if description and not existing.description:  # registered by a run that died before the card
        _client().update_model_version(name, existing.version, description=description)
    if CHALLENGER not in _client().get_registered_model(name).aliases:
        # registered by a run that died before it set the alias
        _client().set_registered_model_alias(name, CHALLENGER, existing.version)
    return existing


def attach_export(name: str, version: str, export_dir: Path, metrics: dict[str, float]) -> None:
    """The ONNX files into the version's logged model (so `champion` names a deployable file) and their
    check and speed figures as version tags. Done once per version: the last tag marks it complete, so a
    rerun after a kill part-way copies again and a rerun after success copies nothing."""
    model_version = _client().get_model_version(name, version)
    if ATTACHED_TAG in model_version.tags or not model_version.source.startswith("models:/"):
        return  # attached before, or registered before models were LoggedModels
    _client().log_model_artifacts(model_version.source.removeprefix("models:/"), str(export_dir))
    for key, value in metrics.items():
        if key.startswith(("onnx_", "size_mb_student_onnx", "latency_ms_b1_student_onnx", "classifier_glue_score",
                           "classifier_latency_ms_b1", "classifier_size_mb")):
            _client().set_model_version_tag(name, version, key, f"{value:.6g}")
    _client().set_model_version_tag(name, version, ATTACHED_TAG, "true")


def champion_version(name: str):
    try:
        return _client().get_model_version_by_alias(name, CHAMPION)
    except Exception as error:
        if _is_not_found(error):  # no such alias (or model) yet
            return None
        raise


def promote_by_policy(config: RegistryConfig, version: str) -> Decision:
    """Apply the rule to `version` against the current champion; move `champion` when it passes."""
    challenger = _client().get_model_version(config.model_name, version)
    champion = champion_version(config.model_name)
    if champion is not None and champion.version == challenger.version:
        return Decision(False, f"version {version} is already the champion")
    decision = decide(config.promotion, challenger.tags, champion.tags if champion else None)
    if decision.promote:
        promote(config.model_name, version)
    return decision


def promote(name: str, version: str) -> None:
    """Point `champion` at `version` and remember the previous champion for rollback."""
    try:
        _client().get_model_version(name, str(version))
    except Exception as error:
        if not _is_not_found(error):
            raise
        raise DistilflowError(f"model '{name}' has no version {version}: see `distilflow models`") from None
    _move_champion(name, lambda history, _: history if history[-1:] == [str(version)] else [*history, str(version)])


def rollback(name: str) -> tuple[str, bool]:
    """Give `champion` back to the previous champion; returns that version and whether the alias moved."""

    def previous(history: list[str], champion: str | None) -> list[str]:
        if champion in history and history[-1] != champion:  # history ahead of the alias (a registry from
            history = history[:len(history) - history[::-1].index(champion)]  # before this was atomic)
        if len(history) < 2:
            raise DistilflowError(f"model '{name}' has no earlier champion to roll back to (history: {history or 'empty'})")
        return history[:-1]

    before, history = _move_champion(name, previous)
    return history[-1], history[-1] != before


def _move_champion(name: str, change) -> tuple[str | None, list[str]]:
    """Alias and history change together: `change(history, champion)` gives the new history, whose last
    entry becomes the champion. A local store: one writer at a time under a file lock. A tracking server,
    where no lock can be taken: write both, read both back, and write again from what is there until they
    agree (compare-and-set): a concurrent writer then wins or loses whole, never half. Returns the champion
    before and the history after."""
    client = _client()
    with _champion_lock(name):
        before = _alias(name)
        for attempt in range(CAS_ATTEMPTS):
            wanted = change(_history(name), _alias(name))
            client.set_registered_model_tag(name, HISTORY_TAG, ",".join(wanted))
            client.set_registered_model_alias(name, CHAMPION, wanted[-1])
            if _history(name) == wanted and _alias(name) == wanted[-1]:
                return before, wanted
            time.sleep(random.uniform(0.05, 0.25) * (attempt + 1))  # another writer: let it finish
    raise DistilflowError(f"model '{name}': champion kept changing under other promotions ({CAS_ATTEMPTS} tries): "
                          "run the command again")


CAS_ATTEMPTS = 10


@contextmanager
def _champion_lock(name: str) -> Iterator[None]:
    """A file lock for a store on this machine (SQLite or files); none for a tracking server."""
    import mlflow

    uri = mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        yield
        return
    store = Path(uri.removeprefix("sqlite:///").removeprefix("file://"))
    with exclusive(store.parent / f"{store.name}.registry.{name}", wait_seconds=120):
        yield


def _alias(name: str) -> str | None:
    version = champion_version(name)
    return str(version.version) if version is not None else None


def _history(name: str) -> list[str]:
    try:
        model = _client().get_registered_model(name)
    except Exception as error:
        if not _is_not_found(error):
            raise
        raise DistilflowError(f"no registered model '{name}': run the pipeline first (make run)") from None
    return [v for v in model.tags.get(HISTORY_TAG, "").split(",") if v]


def list_versions(name: str) -> list[dict[str, str]]:
    """One row per version, newest first: aliases and the scores the rule looks at."""
    versions = _client().search_model_versions(f"name='{name}'")
    if not versions:
        raise DistilflowError(f"no registered model '{name}': run the pipeline first (make run)")
    # Version search results carry no aliases; the registered model has them all.
    aliases: dict[str, list[str]] = {}
    for alias, version in _client().get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for version in sorted(versions, key=lambda v: int(v.version), reverse=True):
        tags, (score, retention, _) = version.tags, scored_by(version.tags)  # GLUE's, or a task's (distilflow-<task>)
        rows.append({"version": str(version.version), "aliases": ", ".join(sorted(aliases.get(str(version.version), []))),
                     "score": _score(tags.get(score)), "retention": _score(tags.get(retention)),
                     "tasks": tags.get("glue_tasks", tags.get("task", "")), "cpu b1 ms": tags.get("latency_ms_cpu_b1", ""),
                     "run": (version.run_id or "")[:8]})
    return rows


def _score(value: str | None) -> str:
    return f"{100 * float(value):.1f}" if value else ""
