"""Stage `prepare`: the corpus -> tokenized, packed sequences in paths.prepared (Arrow)."""

from __future__ import annotations

from distilflow.config import Params
from distilflow.data.corpus import require_text
from distilflow.data.prepare import META_FILE, PreparedData, prepare_corpus
from distilflow.data.sources import load_tokenizer, require_length_fits
from distilflow.ops import tracking
from distilflow.ops.files import exclusive, refuse_foreign_folder


def run(params: Params) -> PreparedData:
    refuse_foreign_folder(params.paths.prepared, META_FILE)
    tokenizer = load_tokenizer(params.teacher.model)
    require_positions(params)
    for source in filter(None, (params.data.train, params.data.test)):  # a bad file: one line before the run opens
        require_text(source)
    with exclusive(params.paths.prepared, params.orchestration.lock_wait_seconds), \
            tracking.mlflow_run(params.tracking, "prepare", tags={"stage": "prepare"}):
        tracking.log_source_datasets(params.versioning, ["corpus", "teacher"])
        prepared = prepare_corpus(params.data, tokenizer, params.paths.prepared)
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "data": params.data.model_dump(mode="json")})
        tracking.set_tags({"data_fingerprint": prepared.fingerprint})
        tracking.log_metrics({f"sequences_{split}": count for split, count in prepared.meta["sequences"].items()})
    return prepared


def require_positions(params: Params) -> None:
    """Sequences longer than the teacher's position embeddings would crash training much later."""
    require_length_fits(params.teacher.model, "teacher", {"data.max_seq_length": params.data.max_seq_length},
                        fix="set teacher.model in params.yaml to an existing folder or Hub id")
