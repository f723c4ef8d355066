"""Stage `prepare`: the corpus -> tokenized, packed sequences in paths.prepared (Arrow)."""

from __future__ import annotations

from distilflow.base.files import exclusive, refuse_foreign_folder
from distilflow.base.pretrained import SET_TEACHER, load_tokenizer, require_length_fits
from distilflow.config import Params
from distilflow.data.corpus import require_text
from distilflow.data.prepared import META_FILE, PreparedData, load_prepared, prepare_corpus
from distilflow.ops.tracking import Tracking


def run(params: Params) -> PreparedData:
    refuse_foreign_folder(params.paths.prepared, META_FILE)
    tokenizer = load_tokenizer(params.teacher.model, fix=SET_TEACHER)
    require_positions(params)
    for source in filter(None, (params.data.train, params.data.test)):  # a bad file: one line before the run opens
        require_text(source)
    with exclusive(params.paths.prepared, params.orchestration.lock_wait_seconds), \
            Tracking(params.tracking) as tracking, tracking.run("prepare", tags={"stage": "prepare"}):
        tracking.log_source_datasets(params.versioning, ["corpus", "teacher"])
        prepared = prepare_corpus(params.data, tokenizer, params.paths.prepared)
        tracking.log_params({"teacher": params.teacher.model_dump(mode="json"),
                             "data": params.data.model_dump(mode="json")})
        tracking.set_tags({"data_fingerprint": prepared.fingerprint})
        tracking.log_metrics({f"sequences_{split}": count for split, count in prepared.meta["sequences"].items()})
    return prepared


def verify(params: Params) -> str:
    """The full check of the prepared data (every byte hashed), which loads skip for a cost that does not grow."""
    prepared = load_prepared(params.paths.prepared, full=True)
    files = prepared.meta.get("files") or prepared.meta.get("checksums", {})
    size = sum(identity.get("bytes", 0) for identity in files.values() if isinstance(identity, dict))
    return f"prepared corpus in {prepared.path}: all {len(files)} files as prepare wrote them ({size / 1e6:,.1f} MB)"


def require_positions(params: Params) -> None:
    """Sequences longer than the teacher's position embeddings would crash training much later."""
    require_length_fits(params.teacher.model, "teacher", {"data.max_seq_length": params.data.max_seq_length},
                        fix=SET_TEACHER)
