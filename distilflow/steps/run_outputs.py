"""What a pipeline run made: in the working tree, or, for a run with overrides or a sweep's variant, in its DVC
experiment (outputs copied out of the DVC cache; the working tree left as it is)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from distilflow.base.files import read_json
from distilflow.config import Params
from distilflow.errors import DistilflowError
from distilflow.evaluation.glue_results import GlueReport, read_report
from distilflow.export.summary import render
from distilflow.ops import dvc, experiments


@dataclass
class RunOutputs:
    """What a pipeline run made: in the working tree, or (`experiment`) in its DVC experiment."""

    params: Params
    experiment: str | None = None

    def metrics(self, name: str) -> dict:
        if self.experiment:
            return experiments.read_json(self.experiment, str(self.params.paths.metrics / name))
        return read_json(self.params.paths.metrics / name)

    def report(self) -> GlueReport:
        if self.experiment:
            return GlueReport.model_validate(self.metrics("glue.json"))
        report_file = self.params.paths.metrics / "glue.json"
        if not report_file.is_file():
            raise DistilflowError(f"no GLUE report at {report_file}: run `distilflow glue-report` (or `dvc repro`) first")
        return read_report(report_file)

    def folder(self, path: Path) -> Path:
        """An output folder: the working tree's, or the experiment's copied out of the DVC cache."""
        if not self.experiment:
            return path
        copy = self.params.paths.sweeps / self.experiment / path.name
        shutil.rmtree(copy, ignore_errors=True)
        return experiments.materialize(self.experiment, str(path), copy)

    def output_hashes(self) -> dict[str, str]:
        paths = {"student": self.params.paths.student, "teacher": self.params.paths.teacher}
        if self.experiment:
            return {role: experiments.output_md5(self.experiment, str(path)) for role, path in paths.items()}
        return dvc.output_hashes(paths)

    def export_markdown(self) -> str:
        metrics = self.metrics("export.json")
        return "\n" + render(metrics, self.params) if metrics else ""
