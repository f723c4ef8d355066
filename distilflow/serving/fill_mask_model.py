"""The served student: an MLflow pyfunc (models from code) that answers masked sentences with the top-k
predictions and their scores. The transformers flavour's fill-mask pyfunc returns only the top token.

Logged from this file, so a serving machine needs mlflow, torch and transformers, not distilflow.
The model folder (save_pretrained output) is the `student` artifact.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pydantic
from mlflow.pyfunc import PythonModel

DEFAULT_TOP_K = 5


class MaskPrediction(pydantic.BaseModel):
    token: str
    score: float
    sequence: str


class FillMask(PythonModel):
    def load_context(self, context) -> None:
        from transformers import pipeline

        self.pipeline = pipeline("fill-mask", model=context.artifacts["student"], device="cpu")

    def predict(self, model_input: list[str], params: dict[str, Any] | None = None) -> list[list[MaskPrediction]]:
        """One list per sentence, best first. `[MASK]` works whatever the tokenizer's mask token is."""
        top_k = int((params or {}).get("top_k", DEFAULT_TOP_K))
        mask = self.pipeline.tokenizer.mask_token
        texts = [text.replace("[MASK]", mask) for text in model_input]
        outputs = self.pipeline(texts, top_k=top_k)
        if len(texts) == 1:  # the pipeline unwraps a single input
            outputs = [outputs]
        return [[MaskPrediction(token=item["token_str"].strip(), score=float(item["score"]), sequence=item["sequence"])
                 for item in candidates] for candidates in outputs]


mlflow.models.set_model(FillMask())
