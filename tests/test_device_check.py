"""benchmarks/device_check.sh, the accelerator check, also runs on the CPU (--device cpu): one table,
the engine's rows agreeing with the CPU reference and one smoke-size chapter executed through papermill."""

from __future__ import annotations

import subprocess

import pandas as pd

from conftest import REPO
from ifhelpers.model import registry


def test_device_check_runs_on_cpu(tmp_path):
    table_path = tmp_path / "device_check.csv"
    done = subprocess.run(["bash", "benchmarks/device_check.sh", "--device", "cpu", "--n-texts", "9",
                           "--out", str(table_path)], cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    table = pd.read_csv(table_path)
    engine_rows = table[table["prefix reuse"].notna()]
    assert set(engine_rows["what"]) == set(registry.pair("pocket").members)
    assert set(engine_rows["prefix reuse"]) == {"on", "off"}
    assert (engine_rows["top-1 agreement"] == 1.0).all()
    assert (engine_rows["max rel. diff (resid)"] <= 1e-5).all()
    chapter = table[table["what"].str.startswith("chapter")]
    assert len(chapter) == 1 and chapter["status"].iloc[0] == "ok"
    assert "top-1 agreement" in done.stdout  # the printed table
