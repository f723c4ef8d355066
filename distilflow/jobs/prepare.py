"""Stage `prepare`: the corpus -> tokenized, packed sequences in paths.prepared (Arrow)."""

from __future__ import annotations

from distilflow.config import Params
from distilflow.data.prepare import META_FILE, PreparedData, prepare_corpus
from distilflow.data.sources import load_tokenizer
from distilflow.ops import tracking
from distilflow.ops.files import refuse_foreign_folder


def run(params: Params) -> PreparedData:
    refuse_foreign_folder(params.paths.prepared, META_FILE)
    tokenizer = load_tokenizer(params.teacher.model)
    with tracking.mlflow_run(params.tracking, "prepare", tags={"stage": "prepare"}):
        prepared = prepare_corpus(params.data, tokenizer, params.paths.prepared)
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "data": params.data.model_dump(mode="json")})
        tracking.set_tags({"data_fingerprint": prepared.fingerprint})
        tracking.log_metrics({f"sequences_{split}": count for split, count in prepared.meta["sequences"].items()})
    return prepared
