"""DVC experiments from Python: a variant is `dvc exp run --temp` kept as a git ref, the working tree untouched;
a failed one is one line; the garbage collection after a sweep drops only what removed experiments alone used."""

import hashlib
import subprocess
import sys

import pytest

from distilflow.ops import experiments

GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git + DVC project with one cached output per params value, its first run committed, on a machine where git
    has no user (a new container: an empty HOME)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        for field in ("NAME", "EMAIL"):
            monkeypatch.delenv(f"GIT_{role}_{field}", raising=False)
    (tmp_path / "params.yaml").write_text("word: one\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  say:\n    cmd: python3 say.py\n    params: [word]\n"
                                       "    outs: [out.txt]\n")
    (tmp_path / "say.py").write_text("import sys, yaml\nword = yaml.safe_load(open('params.yaml'))['word']\n"
                                     "if word == 'bad':\n    sys.exit('error: the word bad: give another word')\n"
                                     "open('out.txt', 'w').write(f'said {word}\\n')\n")
    monkeypatch.chdir(tmp_path)
    for command in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                    [sys.executable, "-m", "dvc", "repro", "-q"], ["git", "add", "-A"],
                    [*GIT, "commit", "-q", "-m", "first run"]):
        subprocess.run(command, check=True, capture_output=True)
    return tmp_path


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _cached(text: str) -> bool:
    md5 = _md5(text)
    return (experiments.CACHE / md5[:2] / md5[2:]).is_file()


def test_variants_are_experiments_a_failed_one_is_its_line_and_gc_drops_only_what_removed_ones_alone_used(project):
    """The working tree stays; the losers' outputs go; the winner's, the working tree's and every commit's on any
    branch stay."""
    subprocess.run(["git", "checkout", "-q", "-b", "older"], check=True)
    (project / "params.yaml").write_text("word: four\n")
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], check=True, capture_output=True)
    subprocess.run([*GIT, "commit", "-q", "-am", "a user's other run"], check=True)
    subprocess.run(["git", "checkout", "-q", "-"], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "checkout", "-q"], check=True, capture_output=True)
    (project / "dvc.yaml").write_text((project / "dvc.yaml").read_text() + "# an uncommitted edit, as after make run\n")
    for name in ("winner", "loser"):
        assert experiments.run(name, [f"word={name}"], project / "logs" / f"{name}.log").ok
    failed = experiments.run("bad", ["word=bad"], project / "logs" / "bad.log")
    assert not failed.ok and failed.error == "error: the word bad: give another word"
    assert experiments.finished() == {"winner", "loser"} and _cached("said loser\n")
    assert experiments.output_md5("winner", "out.txt") == _md5("said winner\n")
    assert (project / "params.yaml").read_text() == "word: one\n" and (project / "out.txt").read_text() == "said one\n"
    assert subprocess.run(["git", "config", "user.name"]).returncode != 0  # the user's git config is untouched

    experiments.remove(["loser"])
    experiments.collect_garbage()
    assert experiments.finished() == {"winner"}
    assert not _cached("said loser\n")
    assert all(_cached(f"said {word}\n") for word in ("winner", "one", "four"))
    assert experiments.materialize("winner", "out.txt", project / "w.txt").read_text() == "said winner\n"
