"""A task's data and teacher pinned by DVC (issue 44, "pin the data and the teacher"): copied into data/tasks/NAME/,
read from there, a change copied again with a new version, the user's files left as they were."""

import pytest

from distilflow.config import TaskConfig
from distilflow.errors import DistilflowError
from distilflow.ops import task_pins


def _task(**data) -> TaskConfig:
    return TaskConfig.model_validate({"data": data or {"files": {"train": "mine/train.csv", "report": "mine/test.tsv"}},
                                      "text": ["review"], "label": "verdict", "teacher_classifier": "mine/teacher"})


@pytest.fixture
def users_files(dvc_project):
    mine = dvc_project / "mine"
    (mine / "teacher").mkdir(parents=True)
    (mine / "train.csv").write_text("review,verdict\ngood,liked\n")
    (mine / "test.tsv").write_text("review\tverdict\nbad\tdisliked\n")
    (mine / "teacher" / "config.json").write_text("{}")
    return mine


def test_the_task_reads_the_pinned_copies():
    copies = task_pins.pinned("reviews", _task())
    assert {split: str(path) for split, path in copies.data.files.items()} == {
        "train": "data/tasks/reviews/train.csv", "report": "data/tasks/reviews/report.tsv"}
    assert copies.teacher_classifier == "data/tasks/reviews/teacher"
    assert task_pins.pinned("hubbed", _task(hub="org/tickets")).data.hub == "data/tasks/hubbed/data"


def test_pinning_copies_the_data_and_teacher_and_a_change_is_a_new_version(users_files, dvc_project):
    first = task_pins.pin_task("reviews", _task())
    assert set(first) == {"train", "report", "teacher"}
    pinned = dvc_project / "data" / "tasks" / "reviews"
    assert (pinned / "train.csv").read_text() == (users_files / "train.csv").read_text()
    assert (pinned / "teacher" / "config.json").is_file() and (pinned / "teacher.dvc").is_file()
    assert task_pins.pinned_versions("reviews", _task()) == first
    assert task_pins.pin_task("reviews", _task()) == first  # nothing changed, same versions

    (users_files / "train.csv").write_text("review,verdict\ngood,liked\nfine,liked\n")
    again = task_pins.pin_task("reviews", _task())
    assert again["train"] != first["train"] and again["teacher"] == first["teacher"]
    assert (pinned / "train.csv").read_text().endswith("fine,liked\n")
    assert sorted(path.name for path in users_files.iterdir()) == ["teacher", "test.tsv", "train.csv"]  # untouched


def test_a_task_not_pinned_yet_or_outside_a_dvc_project_is_one_line(users_files, tmp_path_factory, monkeypatch):
    with pytest.raises(DistilflowError, match="task reviews: its data and teacher are not pinned yet .*run "
                                              "`distilflow task reviews` or `distilflow pin`"):
        task_pins.pinned_versions("reviews", _task())
    with pytest.raises(DistilflowError, match="task reviews: data file mine/nope.csv not found: fix "
                                              "tasks.reviews.data.files"):
        task_pins.pin_task("reviews", _task(files={"train": "mine/nope.csv", "report": "mine/test.tsv"}))
    monkeypatch.chdir(tmp_path_factory.mktemp("no_dvc"))
    with pytest.raises(DistilflowError, match="is not a DVC project .*dvc init"):
        task_pins.pin_task("reviews", _task())


def test_a_hub_dataset_is_pinned_from_the_mirror_and_read_from_the_copy(dvc_project, tmp_path_factory, monkeypatch):
    from distilflow.evaluation.task_data import REPORT, load_user_task

    mirror = tmp_path_factory.mktemp("hub")
    (mirror / "org" / "reviews").mkdir(parents=True)
    (mirror / "org" / "reviews" / "train.csv").write_text("review,verdict\n" + "good,liked\nbad,disliked\n" * 10)
    (mirror / "org" / "reviews" / "validation.csv").write_text("review,verdict\nfine,liked\n")
    (mirror / "org" / "teacher").mkdir()
    (mirror / "org" / "teacher" / "config.json").write_text("{}")
    monkeypatch.setenv("DISTILFLOW_HUB_MIRROR", str(mirror))
    config = TaskConfig.model_validate({"data": {"hub": "org/reviews"}, "text": ["review"], "label": "verdict",
                                        "teacher_classifier": "org/teacher", "selection": {"holdout": 0.25}})

    versions = task_pins.pin_task("hubbed", config)
    assert set(versions) == {"data", "teacher"}
    copy = task_pins.pinned("hubbed", config)
    assert (dvc_project / copy.data.hub / "train.csv").is_file()
    (mirror / "org" / "reviews" / "validation.csv").write_text("review,verdict\nawful,disliked\n")  # the Hub moves on
    assert list(load_user_task("hubbed", copy).splits[REPORT]["review"]) == ["fine"]  # the pinned version is read
