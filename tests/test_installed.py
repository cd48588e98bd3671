"""Installed, not only cloned: ``pip install .`` (not editable) into a fresh virtual environment, then
``ifhelpers chapters`` and ``ifhelpers run`` from a folder that is not the clone.

The fresh environment sees the test environment's third-party packages through a ``.pth`` line (no
network here to install them again), but not its editable ``ifhelpers``: the package it imports is
the wheel's copy in its own site-packages, with the chapters as package data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", str(REPO)], check=True, capture_output=True, cwd=root)
    return venv


def ifhelpers(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "ifhelpers"), *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}, timeout=600)


def test_the_installed_package_is_the_wheel_not_the_clone(installed, tmp_path):
    where = subprocess.run([str(installed / "bin" / "python"), "-c", "import ifhelpers; print(ifhelpers.__file__)"],
                           check=True, capture_output=True, text=True, cwd=tmp_path).stdout
    assert str(installed) in where and str(REPO) not in where


def test_chapters_and_run_work_from_any_folder(installed, tmp_path):
    from conftest import save_tiny_family

    listed = ifhelpers(installed, "chapters", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "vector_space" in listed.stdout and str(installed) in listed.stdout  # the chapters are package data
    base = save_tiny_family(tmp_path / "tiny-base", "llama")
    tuned = save_tiny_family(tmp_path / "tiny-it", "qwen2", tuned=True, seed=1)
    done = ifhelpers(installed, "run", "vector_space", "--models", f"base={base},ift={tuned}",
                     "--set", "pararel_relations=[P17, P36]", "--set", "pararel_n_per_relation=2",
                     "--set", "n_mrpc_pairs=4", "--set", "n_paraphrase_sets=4", "--set", "n_nonparaphrase_per_set=2",
                     "--set", "n_resamples=50", "--name", "tiny", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "tiny" / "01_vector_space.ipynb").exists()
    assert list((tmp_path / "runs" / "tiny").glob("vector_space_*.csv"))
    refused = ifhelpers(installed, "run", "vector_space", "--models", "base=./nowhere", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("ifhelpers: No such model folder")
