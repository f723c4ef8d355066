"""A served task student (issue 44, item 4): an MLflow pyfunc (models from code) that answers a text, or a pair of
texts, with the label's name and the probability of each label (a regression task: its score), as the edge runs
it: from the int8 ONNX file through ONNX Runtime when that file passed its check against PyTorch (the
`onnx_int8` artifact is logged only then), else from the PyTorch classifier.

Logged from this file, so a serving machine needs mlflow, transformers and onnxruntime (or torch), not
distilflow. The `classifier` artifact is the model folder (config with id2label, tokenizer, weights).
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pydantic
from mlflow.pyfunc import PythonModel


class TextInput(pydantic.BaseModel):
    text: str
    text_pair: str | None = None  # the second text of a pair task


class Prediction(pydantic.BaseModel):
    label: str | None = None  # classification: the likeliest label's name
    probabilities: dict[str, float] = {}  # classification: every label's
    score: float | None = None  # regression


class Classifier(PythonModel):
    def load_context(self, context) -> None:
        from transformers import AutoConfig, AutoTokenizer

        folder = context.artifacts["classifier"]
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.regression = config.problem_type == "regression" or config.num_labels == 1
        self.max_length = min(self.tokenizer.model_max_length, config.max_position_embeddings)
        onnx_file = context.artifacts.get("onnx_int8")
        if onnx_file:
            import onnxruntime

            self.session = onnxruntime.InferenceSession(onnx_file, providers=["CPUExecutionProvider"])
            self.input_names = [node.name for node in self.session.get_inputs()]
            self.model = None
        else:
            from transformers import AutoModelForSequenceClassification

            self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
            self.session = None

    def predict(self, model_input: list[TextInput], params: dict[str, Any] | None = None) -> list[Prediction]:
        # each row on its own (a request may mix single texts and pairs), then padded together
        rows = [self.tokenizer(item.text, item.text_pair, truncation=True, max_length=self.max_length)
                for item in model_input]
        encoded = self.tokenizer.pad(rows, return_tensors="np")
        logits = self._logits(encoded)
        if self.regression:
            return [Prediction(score=float(row[0])) for row in logits]
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        probabilities = shifted / shifted.sum(-1, keepdims=True)
        return [Prediction(label=self.labels[int(row.argmax())],
                           probabilities={name: float(p) for name, p in zip(self.labels, row)}) for row in probabilities]

    def _logits(self, encoded) -> np.ndarray:
        if self.session is not None:  # single-segment text is segment 0, as the export fed it
            feed = {name: encoded[name] if name in encoded else np.zeros_like(encoded["input_ids"])
                    for name in self.input_names}
            return self.session.run(["logits"], {k: v.astype(np.int64) for k, v in feed.items()})[0]
        import torch

        with torch.no_grad():
            return self.model(**{k: torch.from_numpy(v) for k, v in encoded.items()}).logits.float().numpy()


mlflow.models.set_model(Classifier())
