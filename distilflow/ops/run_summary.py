"""What a pipeline run shows in the MLflow UI, where students are compared: a name that says what ran,
the headline numbers on the run itself (not only in its child runs), the data it was made from as
MLflow datasets, and the report as its description."""

from __future__ import annotations

from pathlib import Path

from distilflow.config import Params, VersioningConfig
from distilflow.evaluation.glue_results import GlueReport

# The tag the MLflow UI reads for a run's (and a model version's) description.
DESCRIPTION_TAG = "mlflow.note.content"
DATASET_CONTEXT = {"corpus": "distillation", "glue": "evaluation", "teacher": "teacher"}


LOSS_TERMS = {"ce": "KD", "mlm": "MLM", "cos": "cosine", "mse": "logit MSE", "hidden": "hidden-state MSE",
              "attention": "attention KL", "relation": "Q/K/V-relation KL"}  # LossConfig.weights()' names


def run_name(params: Params) -> str:
    """E.g. `pipeline T=2 ce=5 mlm=2 cos=1 half every_other_top`: every nonzero loss weight, the student's
    depth and its layer rule, so that two different students never share a name."""
    loss = params.distill.loss
    weights = " ".join(f"{name}={weight:g}" for name, weight in loss.weights().items() if weight)
    return f"pipeline T={loss.temperature:g} {weights} {_student_shape(params)}"


def _student_shape(params: Params) -> str:
    student = params.student
    depth = f"{student.n_layers}L" if student.n_layers else "half"
    if student.hidden_size:
        depth += f"×{student.hidden_size}"  # 3L×256: layers × hidden
    if student.intermediate_size:
        depth += f" ffn={student.intermediate_size}"
    rule = "layers " + ",".join(map(str, student.layers)) if isinstance(student.layers, list) else student.layers
    return f"{depth} {rule}" + ("" if student.init == "teacher" else f" {student.init}-init")


def _loss_formula(params: Params) -> str:
    """1·KD (T=2, all positions) + 2·MLM + ...: the nonzero terms, in words."""
    loss = params.distill.loss
    terms = []
    for name, weight in loss.weights().items():
        if weight:
            detail = f" (T={loss.temperature:g}, {loss.kd_positions} positions)" if name == "ce" else ""
            terms.append(f"{weight:g}·{LOSS_TERMS[name]}{detail}")
    return " + ".join(terms)


def headline_metrics(report: GlueReport, distill_metrics: dict[str, float]) -> dict[str, float]:
    """Stable names for the runs table: GLUE and per-task scores, retention, latency and speed-up, size,
    and the student's held-out masked-LM figures."""
    metrics = dict(report.summary_metrics())
    metrics.update({f"student_{name}": value for name, value in distill_metrics.items()
                    if name.startswith(("test_", "val_"))})
    # 4 decimals: what a table column can show (0.5375, not 0.53750000...); the stage runs keep full precision.
    return {name: round(value, 4) for name, value in metrics.items()}


def description(params: Params, report_markdown: str) -> str:
    return "\n".join([f"**{run_name(params)}** — teacher `{params.teacher.model}`, distilled on the pinned corpus, "
                      "evaluated on GLUE; the numbers below are this run's metrics.", "", report_markdown])


def source_datasets(versioning: VersioningConfig, hashes: dict[str, str]) -> dict[str, object]:
    """{name: MLflow dataset} of each pinned input: its DVC md5 as digest, its origin as source (the Hub
    id when it came from the Hub, else the folder or URL it was copied from)."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    datasets = {}
    for name, source in versioning.sources.items():
        if name not in hashes:  # not pinned yet
            continue
        if source.hub:
            prefix = "datasets/" if source.hub_type == "dataset" else ""
            origin = HTTPDatasetSource(f"https://huggingface.co/{prefix}{source.hub}")
        else:
            origin = _local_or_url_source(source.url)
        datasets[name] = MetaDataset(origin, name=name, digest=hashes[name].removesuffix(".dir"))
    return datasets


def _local_or_url_source(url: str):
    import warnings

    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    if "://" in url:  # http(s)://, s3://, ...: named as given
        return HTTPDatasetSource(url)
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": all of them local folders
        warnings.simplefilter("ignore")
        return resolve_dataset_source(str(Path(url).resolve()))


def model_card(params: Params, report: GlueReport, student_meta: dict, data_versions: dict[str, str]) -> str:
    """The registered version's description: what the student is, what made it, how good and fast it is."""
    from distilflow.evaluation.report import render_markdown

    layers = student_meta.get("teacher_layers", [])
    versions = ", ".join(f"{name} `{value}`" for name, value in sorted(data_versions.items())) or "not pinned"
    mlm = student_meta.get("metrics", {})
    held_out = (f"held-out masked-LM loss {mlm['test_mlm_loss']:.3f}, accuracy {mlm['test_mlm_accuracy']:.1%}, "
                f"agreement with the teacher {mlm['test_teacher_agreement']:.1%}"
                if {"test_mlm_loss", "test_mlm_accuracy", "test_teacher_agreement"} <= set(mlm) else "no held-out set")
    return "\n".join([
        f"# distilflow student — {run_name(params).removeprefix('pipeline ')}", "",
        f"- **Teacher**: `{params.teacher.model}`; the student keeps {len(layers)} of its layers, {layers} "
        f"(rule `{_student_shape(params)}`, initialised from {params.student.init})",
        f"- **Loss**: {_loss_formula(params)}",
        f"- **Training**: {params.distill.train.max_steps} steps of {params.distill.train.micro_batch_size}"
        f"×{params.distill.train.gradient_accumulation_steps} sequences of ≤ {params.data.max_seq_length} tokens, "
        f"learning rate {params.distill.train.learning_rate:g}, masks drawn anew for every batch",
        f"- **Data versions (DVC md5)**: {versions}",
        f"- **Masked LM**: {held_out}", "",
        render_markdown(report),
    ])
