"""A sweep's variants: the grid's product, named variants, both crossed; names that say what differs."""

import pytest

from distilflow.config.sweep import SweepSpec, grid_from_options
from distilflow.errors import DistilflowError


def test_grid_options_read_each_value_as_yaml_and_keep_lists_whole():
    grid = grid_from_options(["distill.loss.temperature=1,2.5,4", "glue.tasks=[rte],[mrpc,stsb]",
                              "student.layers=every_other,null"])
    assert grid == {"distill.loss.temperature": [1, 2.5, 4], "glue.tasks": [["rte"], ["mrpc", "stsb"]],
                    "student.layers": ["every_other", None]}


@pytest.mark.parametrize("option", ["temperature", "=1,2", "distill.loss.temperature="])
def test_a_grid_option_without_key_or_values_is_one_line(option):
    with pytest.raises(DistilflowError, match="must look like section.key=value1,value2"):
        grid_from_options([option])


def test_the_grid_is_a_product_and_named_variants_run_at_every_point_of_it():
    spec = SweepSpec(grid={"glue.tasks": [["rte"], ["mrpc"]], "distill.loss.temperature": [2, 4]})
    assert spec.planned() == {
        "tasks-rte_temperature-2": ["glue.tasks=[rte]", "distill.loss.temperature=2"],
        "tasks-rte_temperature-4": ["glue.tasks=[rte]", "distill.loss.temperature=4"],
        "tasks-mrpc_temperature-2": ["glue.tasks=[mrpc]", "distill.loss.temperature=2"],
        "tasks-mrpc_temperature-4": ["glue.tasks=[mrpc]", "distill.loss.temperature=4"]}
    crossed = SweepSpec(grid={"glue.tasks": [["rte"], ["mrpc"]]}, variants={"plain": ["glue.epochs=3"], "td": []})
    assert list(crossed.planned()) == ["tasks-rte_plain", "tasks-rte_td", "tasks-mrpc_plain", "tasks-mrpc_td"]
    assert crossed.planned()["tasks-mrpc_plain"] == ["glue.tasks=[mrpc]", "glue.epochs=3"]
    assert SweepSpec(variants={"a": ["x.y=1"]}).planned() == {"a": ["x.y=1"]}


def test_a_sweep_given_again_has_the_same_name_and_another_sweep_another():
    one = SweepSpec(grid={"distill.loss.temperature": [2, 4]})
    assert one.sweep_name() == SweepSpec(grid={"distill.loss.temperature": [2, 4]}).sweep_name()
    assert one.sweep_name() != SweepSpec(grid={"distill.loss.temperature": [2, 3]}).sweep_name()
    assert SweepSpec(name="mine", grid={"a.b": [1]}).sweep_name() == "mine"


def test_groups_are_the_values_of_the_keys_each_group_chooses_by():
    spec = SweepSpec(select={"per": ["glue.tasks"]})
    assert spec.group(["glue.tasks=[rte]", "glue.epochs=3"]) == "glue.tasks=[rte]"
    assert SweepSpec().group(["glue.epochs=3"]) == "all"
