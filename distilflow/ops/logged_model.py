"""The student as an MLflow LoggedModel: what the registry registers, and what `mlflow models serve` runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def log_student_model(student_dir: Path, input_example: str, top_k: int, metrics: dict[str, float]) -> str:
    """The student folder, logged once, as a LoggedModel of the active run: a pyfunc that answers masked
    sentences with the top-k predictions and scores (distilflow/serving/fill_mask_model.py, from code: serving
    needs no distilflow), the folder itself its `student` artifact. `metrics` are linked to it; returns its model
    id. The registry registers this model: no other copy of the weights goes to MLflow."""
    import mlflow
    import torch
    import transformers

    # by path, not imported: the file declares the model (mlflow.models.set_model) when it runs
    served_model = importlib.util.find_spec("distilflow.serving.fill_mask_model").origin
    info = mlflow.pyfunc.log_model(
        name="student", python_model=served_model, artifacts={"student": str(student_dir)},
        input_example=([input_example], {"top_k": top_k}),  # the params schema: top_k, this default
        # Explicit: inferring them imports the model's modules in a subprocess; torchvision is not needed.
        pip_requirements=[f"mlflow=={mlflow.__version__}", f"torch=={torch.__version__.split('+')[0]}",
                          f"transformers=={transformers.__version__}"],
    )
    if metrics:
        mlflow.log_metrics(metrics, model_id=info.model_id)
    return info.model_id


def log_classifier_model(classifier_dir: Path, onnx_int8: Path | None, input_example: list[dict],
                         metrics: dict[str, float]) -> str:
    """A task's student classifier, logged as a LoggedModel of the active run: a pyfunc that answers a text (or
    a pair) with the label's name and every label's probability (distilflow/serving/classifier_model.py), from
    `onnx_int8` through ONNX Runtime when given (the export passed its check), else from the PyTorch folder."""
    import mlflow
    import onnxruntime
    import transformers

    served_model = importlib.util.find_spec("distilflow.serving.classifier_model").origin
    artifacts = {"classifier": str(classifier_dir), **({"onnx_int8": str(onnx_int8)} if onnx_int8 else {})}
    runtime = f"onnxruntime=={onnxruntime.__version__}" if onnx_int8 else _torch_requirement()
    info = mlflow.pyfunc.log_model(name="classifier", python_model=served_model, artifacts=artifacts,
                                   input_example=input_example,
                                   pip_requirements=[f"mlflow=={mlflow.__version__}", runtime,
                                                     f"transformers=={transformers.__version__}"])
    if metrics:
        mlflow.log_metrics(metrics, model_id=info.model_id)
    return info.model_id


def log_task_dataset(task: str, train, digest: str) -> None:
    """A task's training rows (a datasets.Dataset) as the active run's MLflow dataset, keyed by its splits' hash:
    the runs table's Dataset column shows what each task student learnt from."""
    import mlflow

    mlflow.log_input(mlflow.data.from_huggingface(train, name=f"task {task}", digest=digest), context="training")


def _torch_requirement() -> str:
    import torch

    return f"torch=={torch.__version__.split('+')[0]}"
