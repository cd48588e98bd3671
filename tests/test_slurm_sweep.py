"""`ifhelpers sweep --executor slurm` through a real one-node Slurm (Debian's slurm-wlm and munge), started
by the test in a private folder and stopped after it: every (pair, chapter) job runs, and each keeps its
own results and provenance.

Skipped, with the reason, where Slurm cannot be started: its daemons are not installed (``apt-get install
slurm-wlm munge``), the test is not root (slurmd starts jobs as their users), or the daemons do not come
up or cannot run a trivial job within a minute (the reason gives the end of their logs)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from test_cli import CHAPTER

DAEMONS = ("munged", "slurmctld", "slurmd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path, node: str) -> str:
    return "\n".join([
        "ClusterName=ifbooktest", f"SlurmctldHost={node}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={folder}/munge.socket",
        f"SlurmctldPort={free_port()}", f"SlurmdPort={free_port()}", f"StateSaveLocation={folder}/state",
        f"SlurmdSpoolDir={folder}/spool", f"SlurmctldPidFile={folder}/slurmctld.pid",
        f"SlurmdPidFile={folder}/slurmd.pid", f"SlurmctldLogFile={folder}/slurmctld.log",
        f"SlurmdLogFile={folder}/slurmd.log", "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none", "AccountingStorageType=accounting_storage/none",
        "SchedulerType=sched/builtin", "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core",
        "MpiDefault=none", "ReturnToService=2",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=2000 State=UNKNOWN",
        f"PartitionName=test Nodes={node} Default=YES MaxTime=INFINITE State=UP", ""])


def stop(folder: Path) -> None:
    """Stop the daemons this test started, by the pids they wrote (munge last: Slurm signs with it)."""
    for daemon in reversed(DAEMONS):
        pid_file = folder / f"{daemon}.pid"
        if pid_file.is_file() and pid_file.read_text().strip().isdigit():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm cluster of this machine; yields its SLURM_CONF."""
    missing = [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]
    if missing:
        pytest.skip(f"Slurm cannot be started: {', '.join(missing)} not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("Slurm cannot be started: slurmd must run as root to start jobs, and this test is not root")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    key = folder / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    node = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(slurm_conf(folder, node))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    sbin = Path("/usr/sbin")
    try:
        subprocess.run([str(sbin / "munged"), "--force", f"--socket={folder}/munge.socket", f"--key-file={key}",
                        f"--log-file={folder}/munged.log", f"--pid-file={folder}/munged.pid",
                        f"--seed-file={folder}/munged.seed"], check=True, capture_output=True, timeout=30)
        subprocess.run([str(sbin / "slurmctld"), "-f", str(conf)], check=True, capture_output=True, env=env, timeout=30)
        subprocess.run([str(sbin / "slurmd"), "-f", str(conf), "-N", node], check=True, capture_output=True, env=env,
                       timeout=30)
        deadline = time.time() + 30
        state = ""
        while time.time() < deadline and state not in ("idle", "mixed", "allocated"):
            time.sleep(0.5)
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout.strip()
        if state not in ("idle", "mixed", "allocated"):
            raise RuntimeError(f"the node is {state or 'not reported'} after 30 s")
        subprocess.run(["sbatch", "--wait", "--wrap", "true", "-o", os.devnull], check=True, capture_output=True,
                       env=env, timeout=60)  # a job runs to its end: the sweep will not wait forever
    except (subprocess.SubprocessError, OSError, RuntimeError) as error:
        logs = " | ".join(f"{p.name}: {p.read_text()[-300:]}" for p in sorted(folder.glob("*.log")))
        stop(folder)
        pytest.skip(f"Slurm cannot be started here ({error}); logs: {logs}")
    yield str(conf)
    deadline = time.time() + 60  # let every job step finish and report before its daemons go
    while time.time() < deadline and subprocess.run(["squeue", "-h"], capture_output=True, text=True,
                                                    env=env).stdout.strip():
        time.sleep(0.5)
    stop(folder)


def test_a_sweep_on_slurm_runs_every_job_and_each_keeps_its_provenance(slurm, tmp_path, monkeypatch):
    from ifhelpers import cli, results

    monkeypatch.setenv("SLURM_CONF", slurm)
    tiny = tmp_path / "99_tiny.md"
    tiny.write_text(CHAPTER)
    other = tmp_path / "98_other.md"
    other.write_text(CHAPTER.replace("tiny_summary", "other_summary").replace("n_items", "n_other"))
    runs = tmp_path / "runs"
    outs = cli.sweep([str(tiny), str(other)], ["pocket", "pocket-tuned"], executor="slurm", runs_dir=runs,
                     overrides={"n_items": 5}, timeout_min=10)
    assert sorted(o.name for o in outs) == ["pocket", "pocket", "pocket-tuned", "pocket-tuned"]
    for pair, members in (("pocket", ["gemma-3-270m", "smollm2-135m-instruct"]),
                          ("pocket-tuned", ["gemma-3-270m", "gemma-3-270m-ift-paraphrase-rich",
                                            "gemma-3-270m-ift-single-template", "gemma-3-270m-ift-free-form"])):
        found = results.provenances(runs / pair)
        assert sorted(found) == ["98_other", "99_tiny"]
        for chapter, prov in found.items():
            assert prov["chapter"] == chapter and prov["wall_s"] > 0 and prov["finished"]
            assert prov["parameters"]["models"] == members
        assert found["99_tiny"]["parameters"]["n_items"] == 5 and "n_items" not in found["98_other"]["parameters"]
        assert pd.read_csv(runs / pair / "tiny_summary.csv")["n_items"].tolist() == [5] * len(members)
        assert pd.read_csv(runs / pair / "other_summary.csv")["model"].tolist() == members
    scripts = list((runs / "_submitit").glob(".submission_file_*.sh"))  # submitted with sbatch, as a job array
    assert scripts and all("#SBATCH --array=0-3" in p.read_text() for p in scripts)
    assert len(list((runs / "_submitit").glob("*_*_0_result.pkl"))) == 4
