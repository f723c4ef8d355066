"""prepare -> teacher head (when the teacher has none) -> distill, as one Prefect flow.

    python -m flows.distill [params.yaml]
"""

from __future__ import annotations

import sys

from prefect import flow

from distilflow.config import load_params
from tasks.distill import distill_student, prepare_corpus, teacher_head


@flow(name="distill", log_prints=True)
def distill_flow(params_path: str = "params.yaml", overrides: list[str] | None = None) -> str:
    params = load_params(params_path, overrides or [])
    prepared = prepare_corpus(params)
    teacher = teacher_head(params, prepared)
    return str(distill_student(params, prepared, teacher).student_path)


if __name__ == "__main__":
    distill_flow(*sys.argv[1:2])
