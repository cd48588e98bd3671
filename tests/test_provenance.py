"""Provenance of a run (ifhelpers.results): what it records, and when a committed run is older than the code."""

import subprocess

import pytest

from ifhelpers import results


def git(root, *args):
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture()
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@t")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "ifhelpers").mkdir()
    (tmp_path / "ifhelpers" / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "one")
    return tmp_path


def head(root):
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()


def test_code_state_records_the_commit_and_uncommitted_changes(repo):
    state = results.code_state(repo)
    assert state == {"code_commit": head(repo), "dirty": False}
    (repo / "ifhelpers" / "a.py").write_text("x = 2\n")
    assert results.code_state(repo)["dirty"] is True


def test_a_run_is_stale_once_the_package_changes_after_its_commit(repo):
    run = {"code_commit": head(repo), "dirty": False}
    assert results.stale_against_code(run, repo) == ""
    (repo / "README").write_text("prose\n")  # a change outside ifhelpers/ does not make it stale
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "docs")
    assert results.stale_against_code(run, repo) == ""
    assert results.stale_against_code({**run, "code_commit": head(repo)}, repo) == ""
    (repo / "ifhelpers" / "a.py").write_text("x = 3\n")
    git(repo, "commit", "-qam", "code")
    assert "older than the last change to ifhelpers" in results.stale_against_code(run, repo)
    assert "uncommitted" in results.stale_against_code({**run, "dirty": True}, repo)
    assert results.stale_against_code({}, repo) == "no code commit recorded"


def test_provenance_round_trips_and_a_missing_run_is_said_plainly(tmp_path):
    results.write_provenance(tmp_path, code_commit="abc", parameters={"seeds": [0, 1]}, wall_s=None)
    results.write_provenance(tmp_path, wall_s=61.5)
    assert results.read_provenance(tmp_path) == {"code_commit": "abc", "parameters": {"seeds": [0, 1]}, "wall_s": 61.5}
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    run = results.committed_run(tmp_path, "t")
    assert run.table.to_dict("list") == {"a": [1], "b": [2]}
    assert run.summary.loc["wall time (min)", ""] == 1.0 and run.summary.loc["parameter seeds", ""] == "[0, 1]"
    assert run.summary.loc["matches the code today", ""].startswith("no")  # "abc" is no commit of this repository
    missing = results.committed_run(tmp_path / "nowhere", "t")
    assert missing.table.empty and "no committed run" in missing.summary.iloc[0, 0]


def test_committed_runs_lists_every_run_with_provenance(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()  # no provenance: not a committed run
    results.write_provenance(tmp_path / "a", chapter="05_tune_it_yourself", code_commit="", wall_s=120.0,
                             machine={"cpus": 2, "accelerator": "none"})
    table = results.committed_runs(tmp_path)
    assert table["run"].tolist() == ["a"] and table["wall time (min)"].tolist() == [2.0]
    assert table["matches the code today"].iloc[0] == "NO: no code commit recorded"
    assert table["machine"].iloc[0] == "2 CPUs, accelerator none"


def test_changes_to_the_presentation_modules_do_not_make_a_run_stale(repo):
    run = {"code_commit": head(repo), "dirty": False}
    (repo / "ifhelpers" / "summary.py").write_text("# how results are shown\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "summary")
    assert results.stale_against_code(run, repo) == ""
