"""Where a chapter's tidy results go, so that runs for new models can be gathered into one table.

A chapter executed by ``ifhelpers run`` (or papermill) gets a ``results_dir`` parameter; every
tidy table it computes is written there as CSV with the run's name, the model and its role in
columns. Executed without one (the rendered book), nothing is written, except each chapter's
*headlines* (:func:`save_headlines`): one row per result of the paper, kept in the book's build folder
for the reproduction summary page.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ifhelpers.findings import HEADLINE_COLUMNS


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` as CSV whole or not at all: into a temporary file beside it, then renamed
    over ``path``, so that a full disk or a crash mid-write leaves the previous file (or none), never a
    table cut short; the error says which table could not be written."""
    part = path.with_name(f".{path.name}.part")
    try:
        frame.to_csv(part, index=False)
        os.replace(part, path)
    except OSError as error:
        part.unlink(missing_ok=True)
        raise OSError(error.errno, f"{error.strerror}: the table {path} was not written (the previous one, if "
                                   f"any, is kept; forward passes and tuned models stay in the cache, so a "
                                   f"re-run only redoes what is missing)") from None
    return path


def save_table(frame: pd.DataFrame, name: str, results_dir: str | Path | None) -> Path | None:
    """Write ``frame`` as ``<results_dir>/<name>.csv`` (no-op when ``results_dir`` is None), whole
    (:func:`write_csv`)."""
    if results_dir is None:
        return None
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return write_csv(frame, folder / f"{name}.csv")


def load_tables(runs_dir: str | Path, name: str) -> pd.DataFrame:
    """Every run's ``<name>.csv`` under ``runs_dir/<run>/``, concatenated with a ``run`` column."""
    frames = []
    for path in sorted(Path(runs_dir).glob(f"*/{name}.csv")):
        frame = pd.read_csv(path)
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Headline findings: one tidy row per result of the paper, gathered by the reproduction summary page

def book_root(start: str | Path | None = None) -> Path | None:
    """The folder holding ``_toc.yml``: ``start`` (default: the working directory) or one above it.

    A chapter executed by ``jupyter-book build`` runs in its own folder (``notebooks/``) of the book
    being built, which may be a copy of the repository (the book test builds one in a temporary
    folder), so the root is found from where the kernel runs, not from this package's location.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def headlines_dir(start: str | Path | None = None) -> Path | None:
    """Where the book build keeps the chapters' headlines: ``$IFHELPERS_HEADLINES`` if set, else
    ``<book root>/_build/headlines`` (wiped with the Jupyter cache by ``make clean-book``); None when
    no book root is found."""
    override = os.environ.get("IFHELPERS_HEADLINES")
    if override:
        return Path(override)
    root = book_root(start)
    return None if root is None else root / "_build" / "headlines"


def cache_activity() -> str:
    """Whether the user cache was warm for this execution: the batches of forward passes
    (:data:`ifhelpers.model.cache.PARTS_WRITTEN`) and the fine-tuning checkpoints
    (:data:`ifhelpers.model.cache.CHECKPOINTS_WRITTEN`) this process computed and wrote. A chapter runs
    in a kernel of its own, so these count its own work only, not that of processes beside it."""
    from ifhelpers.model import cache

    parts, epochs = cache.PARTS_WRITTEN, cache.CHECKPOINTS_WRITTEN
    if parts == 0 and epochs == 0:
        return "warm (no forward pass or training computed)"
    done = [f"{parts} batches of forward passes" if parts else "", f"{epochs} training epochs" if epochs else ""]
    return f"cold or partly cold ({' and '.join(d for d in done if d)} computed)"


def context_note() -> str:
    """The texts this process cut to fit a model's context (:data:`ifhelpers.model.engine.CUT_TO_CONTEXT`),
    counted per model; empty when none was cut."""
    from ifhelpers.model import engine

    cut = {name: len(keys) for name, keys in sorted(engine.CUT_TO_CONTEXT.items()) if keys}
    if not cut:
        return ""
    return ("texts longer than the model's context, read from their last tokens: "
            + ", ".join(f"{name} {n}" for name, n in cut.items()))


def save_headlines(rows: list[dict] | pd.DataFrame, chapter: str, results_dir: str | Path | None,
                   started: float | None = None) -> pd.DataFrame:
    """Write a chapter's headline findings as a tidy CSV and return them as a table.

    ``rows`` has one entry per result of the paper (keys of :data:`HEADLINE_COLUMNS`; build them with
    :func:`ifhelpers.findings.row`). ``started`` is the epoch time (``time.time()``) taken in the
    chapter's first code cell: the elapsed wall time, the time of execution and the cache state
    (:func:`cache_activity`) are added to every row, and its note counts the texts cut to fit a model's
    context (:func:`context_note`). With a ``results_dir`` (``ifhelpers run``) the
    table goes to ``<results_dir>/headlines_<chapter>.csv``; without one (the book build) to
    ``<headlines_dir()>/<chapter>.csv``, which the reproduction summary page gathers.
    """
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    frame["chapter"] = chapter
    now = time.time()
    frame["elapsed_s"] = round(now - started, 1) if started is not None else float("nan")
    frame["executed_at"] = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
    frame["cache"] = cache_activity()
    frame["cpus"] = os.cpu_count()
    cut = context_note()
    if cut:
        frame["note"] = [f"{note}; {cut}" if isinstance(note, str) and note else cut for note in frame["note"]] \
            if "note" in frame else cut
    frame = frame.reindex(columns=HEADLINE_COLUMNS)
    if results_dir is not None:
        save_table(frame, f"headlines_{chapter}", results_dir)
        return frame
    folder = headlines_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(frame, folder / f"{chapter}.csv")
    return frame


def load_headlines(folder: str | Path | None = None, pattern: str = "*.csv") -> pd.DataFrame:
    """Every chapter's headlines under ``folder`` (default :func:`headlines_dir`), in chapter order; in a
    run's folder, where they lie beside its other tables, ``pattern="headlines_*.csv"``."""
    folder = headlines_dir() if folder is None else Path(folder)
    paths = sorted(folder.glob(pattern)) if folder is not None and folder.is_dir() else []
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=HEADLINE_COLUMNS)


# --------------------------------------------------------------------------------------------------
# Provenance of a run, and whether a committed run is older than the code it depends on

PROVENANCE = "provenance.yaml"
#: The code a committed run's numbers depend on (git pathspecs): the package, less the modules that only
#: present results or check inputs (this one, the summary, the book glue, the command line, the
#: parameter declarations).
COMPUTING_CODE = ("ifhelpers", ":(exclude)ifhelpers/results.py", ":(exclude)ifhelpers/summary.py",
                  ":(exclude)ifhelpers/book.py", ":(exclude)ifhelpers/cli.py", ":(exclude)ifhelpers/parameters.py")


def _git(root: Path, *args: str, status: bool = False):
    """git's output in ``root`` ("" when it fails), or with ``status`` whether it succeeded."""
    import subprocess

    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if status:
        return done.returncode == 0
    return done.stdout.strip() if done.returncode == 0 else ""


def code_state(root: str | Path | None = None) -> dict:
    """The code a run executes: the git commit of the repository holding this package, and whether
    ``ifhelpers/`` or ``notebooks/`` had uncommitted changes (``dirty``); empty strings outside git."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    commit = _git(root, "rev-parse", "HEAD")
    dirty = bool(_git(root, "status", "--porcelain", "--", "ifhelpers", "notebooks")) if commit else False
    return {"code_commit": commit, "dirty": dirty}


def machine() -> dict:
    """Where a run executes: host, platform, CPU count, torch threads and accelerator (for provenance)."""
    import platform

    import torch

    return {"host": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "torch": str(torch.__version__), "torch_threads": torch.get_num_threads(),
            "accelerator": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}


def provenance_file(folder: str | Path, chapter: str | None = None) -> Path:
    """Where a run's provenance is: ``<folder>/<chapter>.provenance.yaml`` for one chapter's run (each
    chapter run into one folder keeps its own, beside its ``<chapter>.ipynb``), ``<folder>/provenance.yaml``
    without a chapter (runs written before, such as ``results/tune_it_yourself_full``)."""
    return Path(folder) / (f"{chapter}.{PROVENANCE}" if chapter else PROVENANCE)


def write_provenance(folder: str | Path, chapter: str | None = None, **fields) -> Path:
    """Write (or update) the provenance of ``chapter``'s run in ``folder`` (:func:`provenance_file`) with
    ``fields`` (and ``chapter``); returns its path."""
    import yaml

    path = provenance_file(folder, chapter)
    current = yaml.safe_load(path.read_text()) if path.exists() else {}
    path.write_text(yaml.safe_dump({**current, **({"chapter": chapter} if chapter else {}), **fields}, sort_keys=False))
    return path


def provenances(folder: str | Path) -> dict[str, dict]:
    """Every chapter run's provenance in ``folder``, by chapter: the per-chapter files, and a
    ``provenance.yaml`` of the older layout under its own ``chapter`` field unless a per-chapter file
    of that chapter replaces it. A file that does not parse reads as {} (a run with nothing recorded)."""
    import yaml

    def read(path: Path) -> dict:  # a damaged file reads as a run with nothing recorded
        try:
            data = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            data = None
        return data if isinstance(data, dict) else {}

    folder = Path(folder)
    found = {}
    if (folder / PROVENANCE).is_file():
        legacy = read(folder / PROVENANCE)
        found[legacy.get("chapter", "")] = legacy
    for path in sorted(folder.glob(f"*.{PROVENANCE}")):
        found[path.name[: -len(PROVENANCE) - 1]] = read(path)
    return found


def read_provenance(folder: str | Path, chapter: str | None = None) -> dict:
    """The provenance of ``chapter``'s run in ``folder`` ({} when it has none); without ``chapter``, that of
    the run started last (the only one, in a folder of one chapter's run)."""
    found = provenances(folder)
    if chapter is not None:
        return found.get(chapter, {})
    return max(found.values(), key=lambda p: str(p.get("started") or ""), default={})


def stale_against_code(provenance: dict, root: str | Path | None = None, paths=COMPUTING_CODE) -> str:
    """Why a committed run may not match the code today ("" when it matches): its code commit is
    unknown, was dirty, or is older than the last commit that changed ``paths`` (default
    :data:`COMPUTING_CODE`; that commit is not an ancestor of the run's)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    commit = provenance.get("code_commit", "")
    if not commit:
        return "no code commit recorded"
    if provenance.get("dirty"):
        return f"run from uncommitted changes on top of {commit[:8]}"
    last = _git(root, "log", "-1", "--format=%H", "--", *paths)
    if not last:
        return ""
    ancestor = _git(root, "merge-base", "--is-ancestor", last, commit, status=True)
    shown = ", ".join(p for p in paths if not p.startswith(":"))
    return "" if ancestor else (f"code commit {commit[:8]} is older than the last change to {shown} "
                                f"({last[:8]}): re-run it")


@dataclasses.dataclass
class CommittedRun:
    """A committed run's table and a one-column summary of its provenance (see :func:`committed_run`)."""

    folder: Path | None
    summary: pd.DataFrame
    table: pd.DataFrame


def committed_run(folder: str | Path | None, table: str) -> CommittedRun:
    """A run committed with the book (``results/<run>/``): its ``<table>.csv`` and a summary of its
    provenance (code commit, parameters, machine, wall time) with a line saying whether it is older
    than the code (:func:`stale_against_code`). Without a folder, or without the run, the summary says
    so and the table is empty: the book builds before the full run is committed."""
    if folder is None or not Path(folder).is_dir():
        return CommittedRun(None, pd.DataFrame({"": [f"no committed run at {folder}"]}, index=["full run"]),
                            pd.DataFrame())
    folder = Path(folder)
    provenance = read_provenance(folder)
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path) if path.exists() else pd.DataFrame()
    stale = stale_against_code(provenance)
    params = provenance.get("parameters", {})
    shown = {"folder": str(folder), "code commit": provenance.get("code_commit", "?")[:12],
             "matches the code today": "yes" if not stale else f"no: {stale}",
             "started": provenance.get("started"), "wall time (min)": round((provenance.get("wall_s") or 0) / 60, 1)
             if provenance.get("wall_s") else "unfinished",
             "machine": ", ".join(f"{k}={v}" for k, v in provenance.get("machine", {}).items()
                                  if k in ("host", "cpus", "torch_threads", "accelerator")),
             **{f"parameter {k}": str(v) for k, v in params.items() if k not in ("results_dir", "roles")}}
    return CommittedRun(folder, pd.DataFrame({"": list(shown.values())}, index=list(shown)), frame)


def committed_headlines(folder: str | Path | None) -> dict[str, pd.DataFrame]:
    """The headlines of every run committed under ``folder`` (``results/``), by run name, for runs that wrote
    any; each frame's ``attrs["stale"]`` says why the run may not match the code today ("" when it does:
    :func:`stale_against_code` over its chapters' provenances)."""
    out = {}
    for path in sorted(Path(folder).glob("*")) if folder is not None and Path(folder).is_dir() else []:
        frame = load_headlines(path, "headlines_*.csv") if path.is_dir() else pd.DataFrame()
        if len(frame):
            frame.attrs["stale"] = "; ".join(filter(None, (stale_against_code(prov)
                                                           for prov in provenances(path).values())))
            out[path.name] = frame
    return out


def committed_runs(folder: str | Path) -> pd.DataFrame:
    """One row per chapter run committed under ``folder`` (``results/``): its folder, chapter, code commit, wall time,
    machine and whether it matches the code today (:func:`stale_against_code`; the runs page flags
    the others)."""
    rows = []
    for path, prov in ((p, prov) for p in sorted(Path(folder).glob("*")) if p.is_dir()
                       for prov in provenances(p).values()):
        stale = stale_against_code(prov)
        machine = prov.get("machine", {})
        rows.append({"run": path.name, "chapter": prov.get("chapter", ""), "code commit": prov.get("code_commit", "")[:8],
                     "wall time (min)": round(prov["wall_s"] / 60, 1) if prov.get("wall_s") else None,
                     "machine": f"{machine.get('cpus', '?')} CPUs, accelerator {machine.get('accelerator', '?')}",
                     "matches the code today": "yes" if not stale else f"NO: {stale}"})
    return pd.DataFrame(rows, columns=["run", "chapter", "code commit", "wall time (min)", "machine",
                                       "matches the code today"])
