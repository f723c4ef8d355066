"""DVC from Python: the stage order comes from dvc.yaml; a stage's own exit code survives `dvc repro`."""

import pytest

from distilflow.base import stage_env
from distilflow.config import DataSourceConfig, VersioningConfig
from distilflow.errors import DistilflowError
from distilflow.ops import dvc as versioning
from tests.conftest import ROOT


def test_stages_of_the_real_dvc_yaml_in_dependency_order(monkeypatch):
    monkeypatch.chdir(ROOT)
    stages = versioning.pipeline_stages()
    assert stages[:3] == ["prepare", "teacher", "distill"] and stages[-2:] == ["glue_report", "export"]
    assert {stage for stage in stages if stage.startswith("glue@")}  # one per glue.tasks entry


def test_reproduce_reports_ran_skipped_and_the_exit_code(dvc_project):
    (dvc_project / "oom.sh").write_text(f"#!/bin/sh\necho '{stage_env.OUT_OF_MEMORY_MARKER}' >&2\nexit 3\n")
    (dvc_project / "oom.sh").chmod(0o755)
    (dvc_project / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: echo hi > out.txt\n    outs: [out.txt]\n  oom:\n    cmd: ./oom.sh\n")
    env = {**__import__("os").environ}
    first = versioning.reproduce("make", env, dvc_project / "logs" / "make.log")
    second = versioning.reproduce("make", env, dvc_project / "logs" / "make.log")
    assert first.ran and first.exit_code == 0 and not second.ran
    failed = versioning.reproduce("oom", env, dvc_project / "logs" / "oom.log")
    assert failed.out_of_memory and failed.error.startswith(stage_env.OUT_OF_MEMORY_MARKER)


def test_reproduce_tells_a_run_cache_restore_from_a_run(dvc_project):
    (dvc_project / "params.yaml").write_text("word: one\n")
    (dvc_project / "dvc.yaml").write_text(
        "stages:\n  say:\n    cmd: cat params.yaml > out.txt\n    params: [word]\n    outs: [out.txt]\n")
    env = {**__import__("os").environ}
    outcomes = []
    for word in ("one", "two", "one"):
        (dvc_project / "params.yaml").write_text(f"word: {word}\n")
        outcomes.append(versioning.reproduce("say", env, dvc_project / "logs" / "say.log"))
    assert [outcome.verdict for outcome in outcomes] == ["ran", "ran", "restored from DVC's run-cache"]
    assert (dvc_project / "out.txt").read_text() == "word: one\n"


def test_pin_imports_then_updates_and_records_the_hash(dvc_project, tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    (source / "a.txt").write_text("one")
    config = VersioningConfig(sources={"corpus": DataSourceConfig(path="data/corpus", url=str(source))})
    first = versioning.pin_sources(config)
    assert (dvc_project / "data" / "corpus" / "a.txt").read_text() == "one"
    assert versioning.pin_sources(config) == first  # unchanged source, same version
    (source / "a.txt").write_text("two")
    assert versioning.pin_sources(config) != first
    assert (dvc_project / "data" / "corpus" / "a.txt").read_text() == "two"


def test_pin_follows_a_changed_source_url(dvc_project, tmp_path_factory):
    first, second = tmp_path_factory.mktemp("first"), tmp_path_factory.mktemp("second")
    (first / "a.txt").write_text("first")
    (second / "a.txt").write_text("second")
    for source in (first, second):
        versioning.pin_sources(VersioningConfig(sources={"c": DataSourceConfig(path="data/c", url=str(source))}))
    assert (dvc_project / "data" / "c" / "a.txt").read_text() == "second"
    gone = VersioningConfig(sources={"c": DataSourceConfig(path="data/c", url="gone")})
    with pytest.raises(DistilflowError, match="data source c not found"):
        versioning.pin_sources(gone)


def test_pin_a_missing_source_is_a_clear_error(dvc_project):
    config = VersioningConfig(sources={"corpus": DataSourceConfig(path="data/corpus", url="no/such/folder")})
    with pytest.raises(DistilflowError, match=f"data source corpus not found.* looked for {dvc_project}/no/such/folder"):
        versioning.pin_sources(config)


def test_pin_records_a_relative_url_through_a_symlink_as_given(dvc_project, tmp_path_factory):
    """CI and users keep ../shared beside the clone, often as a symlink: the committed .dvc files must
    still match, or every run would re-import the data."""
    real = tmp_path_factory.mktemp("real")
    (real / "a.txt").write_text("one")
    (dvc_project / "linked").symlink_to(real)
    config = VersioningConfig(sources={"c": DataSourceConfig(path="data/c", url="linked")})
    versioning.pin_sources(config)
    assert versioning._imported_from(dvc_project / "data" / "c.dvc") == "../linked"
