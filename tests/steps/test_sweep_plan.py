"""A sweep's plan: every variant checked as a full params file before anything runs; the final phase."""

import pytest
import yaml

from distilflow.config.sweep import SweepSpec
from distilflow.errors import DistilflowError
from distilflow.steps.sweep_plan import Variant, describe_plan, final_plan, plan
from tests.conftest import tiny_params


@pytest.fixture
def params_file(tmp_path, small_corpus, headless_teacher_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the project's params.yaml, as a sweep in this project reads it
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params(tmp_path, small_corpus, headless_teacher_dir)))
    return str(path)


def test_each_variant_is_an_experiment_named_after_the_sweep_and_scored_on_the_held_out_slices(params_file):
    spec = SweepSpec(name="t", params=params_file, grid={"distill.loss.temperature": [2, 4]},
                     select={"holdout": 0.2})
    variants = plan(spec)
    assert [v.experiment for v in variants] == ["t-temperature-2", "t-temperature-4"]
    assert all(v.overrides[-1] == "glue.selection.holdout=0.2" and v.phase == "select" for v in variants)
    assert describe_plan(spec).splitlines()[1].startswith("  t-temperature-2  [all]  distill.loss.temperature=2")
    assert "each a DVC experiment up to its GLUE report and export," in describe_plan(spec.model_copy(
        update={"through": "export"}))


def test_a_bad_variant_is_one_line_naming_it_before_anything_runs(params_file):
    spec = SweepSpec(name="t", params=params_file, grid={"distill.loss.temprature": [2, 4]})
    with pytest.raises(DistilflowError, match=r"^variant temprature-2: .*temprature"):
        plan(spec)
    with pytest.raises(DistilflowError, match="no variants"):
        plan(SweepSpec(params=params_file))


def test_the_final_phase_scores_each_winner_and_the_extras_on_dev_over_the_seeds(params_file):
    spec = SweepSpec(name="t", params=params_file, final={"seeds": [1, 2], "variants": {"mlm": ["a.b=1"]}})
    winner = Variant("w", ["glue.epochs=3", "glue.selection.holdout=0.1"], "all")
    finals = final_plan(spec, {"all": winner})
    assert [(v.name, v.phase) for v in finals] == [("w-final", "final"), ("mlm-w", "final")]
    assert finals[1].overrides == ["glue.epochs=3", "a.b=1", "glue.selection.holdout=0", "glue.seeds=[1,2]"]


def test_given_recipes_run_nothing_first_and_each_goes_to_the_final_phase(params_file):
    spec = SweepSpec(name="f", params=params_file, select={"given": True, "per": ["glue.tasks"]},
                     variants={"rte": ["glue.tasks=[rte]", "glue.student_epochs=3"], "mrpc": ["glue.tasks=[mrpc]"]},
                     final={"seeds": [1, 2], "variants": {"narrow": ["student.hidden_size=16"]}},
                     register_winner=False)
    recipes = plan(spec)
    assert [(v.name, v.status) for v in recipes] == [("rte", "given"), ("mrpc", "given")]
    finals = final_plan(spec, {v.group: v for v in recipes})
    assert [v.experiment for v in finals] == ["f-rte-final", "f-narrow-rte", "f-mrpc-final", "f-narrow-mrpc"]
    assert finals[1].overrides == ["glue.tasks=[rte]", "glue.student_epochs=3", "student.hidden_size=16",
                                   "glue.selection.holdout=0", "glue.seeds=[1,2]"]
    described = describe_plan(spec)
    assert "2 recipes given" in described and "  recipe rte  glue.tasks=[rte] glue.student_epochs=3\n" in described
    assert "glue.selection.holdout" not in described and ": 4 variants" in described


def test_given_recipes_are_one_per_group_and_need_a_final_phase_and_no_winner(params_file):
    two = SweepSpec(params=params_file, select={"given": True, "per": ["glue.tasks"]}, register_winner=False,
                    final={"seeds": [1]}, variants={"a": ["glue.tasks=[rte]"], "b": ["glue.tasks=[rte]", "glue.epochs=2"]})
    with pytest.raises(DistilflowError, match=r"^select.given: variants a and b are both in group glue.tasks=\[rte\]"):
        plan(two)
    with pytest.raises(ValueError, match="add final:"):
        SweepSpec(select={"given": True}, register_winner=False, variants={"a": []})
    with pytest.raises(ValueError, match="register_winner: false"):
        SweepSpec(select={"given": True}, final={"seeds": [1]}, variants={"a": []})


def test_a_sweep_of_another_params_file_carries_its_values_into_each_experiment(tmp_path, params_file):
    """dvc.yaml reads params.yaml: a sweep of params/other.yaml passes its differing values as overrides."""
    other = yaml.safe_load(open(params_file))
    other["distill"]["train"]["max_steps"] = 7
    other["glue"] = {**other.get("glue", {}), "tasks": ["rte", "mrpc"]}
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(other))
    variants = plan(SweepSpec(name="o", params="other.yaml", grid={"distill.loss.temperature": [2]}))
    assert variants[0].overrides == ["distill.train.max_steps=7", "glue.tasks=[rte, mrpc]",
                                     "distill.loss.temperature=2", "glue.selection.holdout=0.1"]
    assert plan(SweepSpec(name="p", params="params.yaml", grid={"distill.loss.temperature": [2]}))[0].overrides == [
        "distill.loss.temperature=2", "glue.selection.holdout=0.1"]
