"""``ifhelpers``: re-execute the book's chapters for new models, one by one or as a sweep.

    ifhelpers chapters
    ifhelpers run CHAPTER --models base=ID,ift=ID [--set name=value ...] [--name RUN] [--trust-remote-code]
    ifhelpers sweep --chapters A,B --pairs pocket,qwen2.5-0.5b [--set name=value ...] [--executor local|slurm|debug]
    ifhelpers cache [--remove PART [--yes]]

``run`` converts the chapter's Jupytext source to a notebook, executes it with papermill with the
given parameters, and writes the executed notebook and the chapter's tidy results (CSV) under
``runs/<name>/`` (``--runs-dir results`` for a run committed with the book), with its provenance
(``<chapter>.provenance.yaml``: code commit, parameters, machine, start, end and wall time). Everything
a run needs (:func:`check_run`: parameters, run name and folder, models and their files, roles, data
mirror) is checked before any kernel starts; a problem prints one line and exits with code 2. ``sweep``
submits one ``run`` per (pair, chapter) through submitit, to Slurm or to the local machine, after
checking every one of them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from ifhelpers import parameters
from ifhelpers.data import sources
from ifhelpers.model import anatomy, folders, registry
from ifhelpers.model.models import ModelNotInstalledError, check_installed



def chapters_folder() -> Path:
    """Where the chapters are: ``ifhelpers/notebooks`` inside an installed package (package data, see
    ``pyproject.toml``), else the ``notebooks/`` folder of the clone this package is imported from."""
    package = Path(__file__).resolve().parent
    installed = package / "notebooks"
    return installed if installed.is_dir() else package.parent / "notebooks"


NOTEBOOKS = chapters_folder()
#: Parameters every chapter has; ``run`` sets them itself.
COMMON = ("models", "roles", "results_dir")
#: What each chapter reads from the offline data mirror (paths inside it), checked before a run starts.
CHAPTER_DATA = {
    "vector_space": ("paraphrase_sets", "pararel/patterns", "pararel/trex"),
    "predictions": ("mmlu", "pararel/patterns", "pararel/trex"),
    "becel": ("becel",),
    "mechanisms": ("pararel/patterns", "pararel/trex", "wikipedia", "nltk_data/corpora/stopwords"),
    "tune_it_yourself": ("instructions", "pararel/patterns", "pararel/trex", "mmlu", "becel"),
    "sensitivity": ("mmlu", "pararel/patterns", "pararel/trex"),
}
#: A run name: one plain folder name (letters, digits, ``.``, ``_``, ``-``, ``+``, ``=``; no path, not hidden).
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")


#: Wall seconds of each chapter at its smoke sizes (``notebooks/smoke.yaml``) with the pocket pair, cold cache,
#: on 2 CPU cores: the ``elapsed_s`` of ``tests/golden/<chapter>.csv`` (chapter 5's includes training its two
#: models; chapter 6's reuses them). The reference of :func:`rough_minutes`.
SMOKE_SECONDS = {"01_vector_space": 58.0, "02_predictions": 14.6, "03_becel": 26.8, "04_mechanisms": 28.0,
                 "05_tune_it_yourself": 177.2, "06_sensitivity": 36.8}
REFERENCE_CPUS = 2


class ChapterFailedError(RuntimeError):
    """A chapter that started and stopped with an error; the message names it and the executed notebook."""


class RunError(ValueError):
    """A run that cannot start as asked (its name, its runs folder); the message says what to do."""


def chapter_name(path: Path) -> str:
    """A chapter's name: its file stem without its number (``01_vector_space.md`` is ``vector_space``)."""
    return path.stem.split("_", 1)[-1]


def chapters(folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """The chapters by name (:func:`chapter_name`)."""
    return {chapter_name(path): path for path in sorted(folder.glob("[0-9][0-9]_*.md"))}


def chapter_path(chapter: str) -> Path:
    """A chapter by name (``vector_space``), numbered stem (``01_vector_space``) or path to a ``.md``."""
    if chapter.endswith(".md") and Path(chapter).exists():
        return Path(chapter).resolve()
    known = chapters()
    for name, path in known.items():
        if chapter in (name, path.stem):
            return path
    raise SystemExit(f"Unknown chapter {chapter!r}. Chapters: {', '.join(known) or '(none found in ' + str(NOTEBOOKS) + ')'}")


def notebook_parameters(path: Path) -> dict:
    """The defaults of a notebook's ``parameters`` cell (:func:`ifhelpers.parameters.declarations`)."""
    return {name: d.default for name, d in parameter_declarations(path).items()}


def parameter_declarations(path: Path) -> dict:
    """What each parameter of a chapter may be, from its ``parameters`` cell."""
    try:
        return parameters.declarations(parameters.cell_source(path))
    except parameters.ParameterError as error:
        raise SystemExit(f"{path.name}: {error}") from None


def check_parameters(path: Path, overrides: dict) -> None:
    """Raise :class:`ifhelpers.parameters.ParameterError` with one line per bad value (what, the value,
    what is valid) before anything runs; the command line prints them and exits with code 2."""
    problems = parameters.check(parameter_declarations(path), overrides, path.stem)
    if problems:
        raise parameters.ParameterError("\n".join(problems))


def yaml_flow(value) -> str:
    """A parameter value as YAML on one line (what ``--set name=value`` reads)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def lesson_plan(in_book: set[str] | None = None):
    """The teaching page's plan: for every chapter with smoke sizes (``notebooks/smoke.yaml``), each
    parameter's default (homework) and lesson size (in class), and the ``ifhelpers run`` command that
    runs the chapter at lesson size. ``in_book`` (``notebooks/<stem>`` entries of the table of contents)
    keeps only the chapters the book shows. Returns (table, commands)."""
    import pandas as pd

    smoke = yaml.safe_load((NOTEBOOKS / "smoke.yaml").read_text()) or {}
    rows, commands = [], []
    for name, path in chapters().items():
        sizes = smoke.get(path.stem, {})
        if not sizes or (in_book is not None and f"notebooks/{path.stem}" not in in_book):
            continue
        defaults = notebook_parameters(path)
        for key, value in sizes.items():
            rows.append({"chapter": path.stem, "parameter": key, "default (homework)": yaml_flow(defaults.get(key)),
                         "lesson size (in class)": yaml_flow(value)})
        settings = " ".join(f"--set {k}='{yaml_flow(v)}'" if isinstance(v, list) else f"--set {k}={yaml_flow(v)}"
                            for k, v in sizes.items())
        models = defaults.get("models", [])
        which = "pair=pocket" if len(models) > 1 else f"base={models[0]}"  # chapter 5 tunes one base model
        commands.append(f".venv/bin/ifhelpers run {name} --models {which} --name lesson {settings}")
    return pd.DataFrame(rows), commands


def parse_models(spec: str) -> tuple[list[str], dict[str, str]]:
    """``base=ID,ift=ID[,ift=ID]`` (or ``pair=NAME``) as a models list and roles for unregistered ids."""
    models, roles = [], {}
    role_names = {"base": "base", "ift": "instruction-tuned", "tuned": "instruction-tuned"}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key, sep, value = item.partition("=")
        if key == "pair" and sep:
            pair = registry.pair(value)
            models += list(pair.members)
            continue
        if not sep or key not in role_names or not value.strip():
            raise SystemExit(f"--models takes base=ID,ift=ID[,ift=ID...] or pair=NAME; got {item!r}")
        models.append(value.strip())
        if value.strip() not in registry.models():
            roles[value.strip()] = role_names[key]
    if not models:
        raise SystemExit(f"--models names no model ({spec!r}); give base=ID,ift=ID[,ift=ID...] or pair=NAME")
    return models, roles


def parse_overrides(pairs: list[str], valid: dict, whose: str = "This chapter's") -> dict:
    """``name=value`` settings (values parsed as YAML: numbers, lists, null), checked against ``valid`` (the
    parameters of ``whose``: one chapter, or the chapters of a sweep)."""
    overrides = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes name=value; got {item!r}")
        if name in COMMON:
            raise SystemExit(f"{name} is set by `ifhelpers run` itself; use --models")
        if name not in valid:
            choices = ", ".join(f"{k} (default {v!r})" for k, v in valid.items() if k not in COMMON)
            raise SystemExit(f"Unknown parameter {name!r}. {whose} parameters: {choices}")
        overrides[name] = parse_value(value)
    return overrides


def parse_value(text: str):
    """A ``--set`` value as YAML, except that ``1e-4`` is the number it looks like (YAML 1.1 reads an
    exponent without a dot as a string), also inside lists."""
    def number(value):
        if isinstance(value, list):
            return [number(v) for v in value]
        if isinstance(value, str):
            try:
                return float(value) if any(c in value.lower() for c in "e.") else value
            except ValueError:
                return value
        return value

    try:
        return number(yaml.safe_load(text))
    except yaml.YAMLError as error:
        where = getattr(error, "problem", None) or "it does not parse"
        raise SystemExit(f"--set value {text!r} is not valid YAML ({where}); write a number, a word, null or a "
                         f"list such as [0, 1, 2]") from None


#: The longest run name (a folder name: most file systems take 255 bytes).
MAX_RUN_NAME = 200


def default_run_name(models: list[str], spec: str = "") -> str:
    """The run name when none is given: the pair's name for ``--models pair=NAME`` (``spec``), otherwise the
    model names joined by ``__``, each made a plain name (``/`` becomes ``--``, other characters outside
    :data:`RUN_NAME` ``-``, no leading dot or dash); a name longer than :data:`MAX_RUN_NAME` keeps its start
    and ends with ``+`` and a hash of the whole, so that other model lists never share it."""
    key, _, value = spec.strip().partition("=")
    if key == "pair" and value and "," not in value:
        return value
    name = "__".join(re.sub(r"[^A-Za-z0-9._+=-]", "-", m.replace("/", "--")).lstrip(".-") for m in models)
    if len(name) <= MAX_RUN_NAME:
        return name
    import hashlib

    return f"{name[:MAX_RUN_NAME - 11]}+{hashlib.sha256(name.encode()).hexdigest()[:10]}"


def run_folder(name: str, runs_dir: str | Path) -> Path:
    """``<runs_dir>/<name>``, once ``name`` is a plain folder name (nothing outside ``runs_dir`` is ever
    written) and the folder exists or can be made there and is writable; :class:`RunError` otherwise.
    Nothing is created."""
    if not str(runs_dir).strip():
        raise RunError("--runs-dir is empty: give a folder (it is made if missing), e.g. --runs-dir runs.")
    if not isinstance(name, str) or not RUN_NAME.fullmatch(name) or len(name) > MAX_RUN_NAME:
        raise RunError(f"--name {name[:60]!r} is not a plain name: use up to {MAX_RUN_NAME} letters, digits and . _ - "
                       f"+ = (no '/', no leading '.'), e.g. --name pocket; the run is written to <runs-dir>/<name>.")
    return writable_folder(Path(runs_dir).expanduser().resolve() / name, f"--runs-dir {runs_dir}",
                           "give a folder (it is made if missing) or another --name")


def nearest_existing(path: Path) -> Path:
    """``path``, or its nearest parent that exists (where a folder to be made would be made)."""
    return next(p for p in (path, *path.parents) if p.exists())


def writable_folder(target: Path, setting: str, hint: str = "give a folder (it is made if missing)") -> Path:
    """``target``, once it is a folder or can be made as one (no file on its path) and the nearest existing
    folder on its path takes a new file; :class:`RunError` naming ``setting`` otherwise. Nothing is left
    behind."""
    existing = nearest_existing(target)
    if not existing.is_dir():
        raise RunError(f"{setting}: {existing} is a file, not a folder; {hint}.")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        raise RunError(f"{setting}: cannot write in {existing} ({err.strerror}); give a folder you can write "
                       f"to.") from None
    return target


def check_same_settings(out_dir: Path, stem: str, settings: dict) -> None:
    """:class:`RunError` when ``out_dir`` already holds a run of chapter ``stem`` made with other settings
    (models, roles, ``--set`` values: its ``<stem>.parameters.yaml``), so that no run's files are
    overwritten by another's. The same settings again are the same run, re-executed (and resumed from the
    cache) in place. Every chapter keeps its own files in a run folder, so chapters never collide."""
    file = out_dir / f"{stem}.parameters.yaml"
    if not file.is_file():
        return
    try:
        before = {k: v for k, v in (yaml.safe_load(file.read_text()) or {}).items() if k != "results_dir"}
    except (yaml.YAMLError, AttributeError, UnicodeDecodeError):
        raise RunError(f"{file} does not read back (damaged); remove {out_dir.name}/{stem}.* to run {stem} there "
                       f"again, or give another --name.") from None
    now = yaml.safe_load(yaml.safe_dump(settings))
    if before != now:
        changed = ", ".join(f"{k}: {yaml_flow(before.get(k))} there, {yaml_flow(now.get(k))} here"
                            for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k))
        raise RunError(f"{out_dir} already holds a run of {stem} with other settings ({changed}); give another "
                       f"--name, or remove {out_dir.name}/{stem}.* to replace it.")


#: The least free space a run starts with, on the runs folder's disk and on the user cache's (bytes): below it a
#: run would fail while writing a tuned model, a forward pass or a table (a cold book fills about 2 GB).
MIN_FREE_BYTES = 2 * 1024**3

#: Where the canonical online sources live: without a mirror, a run reads its data there.
ONLINE_HOST = ("huggingface.co", 443)


def check_free_space(folder: Path, setting: str, minimum: int = MIN_FREE_BYTES) -> None:
    """:class:`RunError` when the disk that holds ``folder`` (or its nearest existing parent) has less than
    ``minimum`` bytes free: a run stopped by a full disk mid-chapter loses the chapter's work."""
    import shutil

    existing = nearest_existing(folder)
    free = shutil.disk_usage(existing).free
    if free < minimum:
        raise RunError(f"{setting}: only {free / 1024**3:.1f} GB free on the disk of {existing}, and a run needs at "
                       f"least {minimum / 1024**3:.0f} GB (tuned models, forward passes, tables): free some space "
                       f"or point it at another disk.")


def online_reachable(host: tuple[str, int] = ONLINE_HOST, timeout: float = 3.0) -> bool:
    """Whether ``host`` answers a TCP connection within ``timeout`` seconds."""
    import socket

    try:
        socket.create_connection(host, timeout=timeout).close()
    except OSError:
        return False
    return True


def check_data_source(relpaths) -> str:
    """Where the run's data come from, checked: the mirror's folder with every one of ``relpaths`` in it
    (:func:`ifhelpers.data.sources.check_mirror`), or, with no mirror set, ``"online"`` once the canonical
    sources can be reached (:data:`ONLINE_HOST`); :class:`RunError` otherwise, before a kernel starts."""
    root = sources.check_mirror(relpaths)
    if root is not None:
        return str(root)
    if not online_reachable():
        raise RunError(f"No data mirror is set ({sources.ENV_DATA}), so the run would read its data from the "
                       f"canonical online sources, but {ONLINE_HOST[0]} cannot be reached: set {sources.ENV_DATA} to "
                       f"the offline mirror (a folder laid out as shared/data), as make book does.")
    return "online"


def check_run(path: Path, models: list[str], roles: dict[str, str], overrides: dict, name: str,
              runs_dir: str | Path) -> Path:
    """Every check a run of the chapter at ``path`` passes before anything is written or a kernel starts, in
    this order: the parameters (names and values, :func:`check_parameters`); the run name and the runs folder
    (:func:`run_folder`), and no run of this chapter with other settings there (:func:`check_same_settings`);
    the user cache (a folder that can be written, :func:`writable_folder`);
    the models (registry names, Hub ids, local folders whose files read back whole,
    :func:`ifhelpers.model.folders.check_folder`; weights this machine can get,
    :func:`ifhelpers.model.models.check_installed`, after the parts the engine reads,
    :func:`ifhelpers.model.anatomy.check_specs`: a model the engine cannot read, or an encoder-decoder model in a
    run that reads or tunes decoders only (:func:`ifhelpers.model.anatomy.decoder_only`), is refused before any
    download) and their roles (:func:`ifhelpers.model.registry.check_roles`:
    a base and a tuned model, each once, or one base model for a chapter whose default tunes one); the data
    the chapter reads from the mirror (:data:`CHAPTER_DATA`), or the online sources when no mirror is set
    (:func:`check_data_source`); free space on the disks of the run folder and the cache
    (:func:`check_free_space`). Returns the run folder; raises the checks' own errors, which the command line
    prints as one line each with exit code 2."""
    defaults = notebook_parameters(path)
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise SystemExit(f"Unknown parameters {sorted(unknown)}; valid: {', '.join(sorted(defaults))}")
    check_parameters(path, overrides)
    out_dir = run_folder(name, runs_dir)
    cache = sources.cache_root()
    writable_folder(cache, f"{sources.ENV_CACHE}={os.environ[sources.ENV_CACHE]}" if os.environ.get(
        sources.ENV_CACHE, "").strip() else f"the user cache {cache}", f"set {sources.ENV_CACHE} to a folder")
    check_same_settings(out_dir, path.stem, {**overrides, "models": list(models), "roles": dict(roles)})
    specs = registry.specs(models, roles)
    registry.check_roles(specs, one_base=len(defaults.get("models") or []) == 1)
    anatomy.check_specs(specs, anatomy.decoder_only(chapter_name(path), {**defaults, **overrides}))
    for spec in specs:
        check_installed(spec)
    check_data_source(CHAPTER_DATA.get(chapter_name(path), ()))
    check_free_space(out_dir, "the runs folder")
    check_free_space(cache, "the user cache")
    return out_dir


def model_count(settings: dict) -> int:
    """How many models a chapter's run evaluates: its ``models``, and the models it tunes (arms × seeds)."""
    arms = settings.get("arms", settings.get("tuned_arms")) or []
    seeds = settings.get("seeds", settings.get("tuned_seeds")) or []
    return len(settings.get("models") or []) + len(arms) * len(seeds)


def rough_minutes(stem: str, settings: dict, cpus: int | None = None) -> tuple[float | None, list[str]]:
    """A ROUGH guess of a run's wall minutes on a CPU, and the size parameters it could not count (None:
    "all", which may take far longer). Not a cost model: it scales the chapter's smoke-size time
    (:data:`SMOKE_SECONDS`) by the number of models it evaluates (:func:`model_count`), by the mean over the
    chapter's other sizes in ``smoke.yaml`` of value / smoke value (numbers, or lengths of lists; each size
    is taken to govern an equal share of the time, linearly), and by ``REFERENCE_CPUS / cpus`` (at most 8
    cores counted). A warm cache is faster, a GPU much faster. Checked once against the committed full run of
    chapter 5 (``results/tune_it_yourself_full``): 60 min guessed (its relations and subjects are None: not
    counted), 90 min measured. None for a chapter without a smoke-size timing."""
    smoke = (yaml.safe_load((NOTEBOOKS / "smoke.yaml").read_text()) or {}).get(stem)
    if stem not in SMOKE_SECONDS or smoke is None:
        return None, []
    defaults = notebook_parameters(chapter_path(stem))
    at_smoke = {**defaults, **smoke}
    ratios, uncounted = [], []
    for key, small in smoke.items():
        value = settings.get(key, defaults.get(key))
        if key in ("arms", "seeds", "tuned_arms", "tuned_seeds", "batch_size", "min_templates"):
            continue
        if value is None:
            uncounted.append(key)
        elif isinstance(value, (list, tuple)) and isinstance(small, (list, tuple)) and small:
            ratios.append(len(value) / len(small))
        elif isinstance(value, (int, float)) and isinstance(small, (int, float)) and small:
            ratios.append(value / small)
    models = model_count({**defaults, **settings}) / max(1, model_count(at_smoke))
    cores = max(1, min(cpus or os.cpu_count() or 1, 8))
    sizes = sum(ratios) / len(ratios) if ratios else 1.0
    return SMOKE_SECONDS[stem] / 60 * models * sizes * REFERENCE_CPUS / cores, uncounted


def run_plan(path: Path, models: list[str], settings: dict, out_dir: Path) -> str:
    """What a run will do, printed before it starts: the chapter, the models, the sizes it sets, where it
    writes, and :func:`rough_minutes`."""
    sizes = ", ".join(f"{k}={yaml_flow(v)}" for k, v in settings.items() if k not in COMMON) or "the defaults"
    minutes, uncounted = rough_minutes(path.stem, {**settings, "models": list(models)})
    if minutes is None:
        guess = "no time estimate (no smoke-size timing of this chapter)"
    else:
        took = f"{minutes:.0f} min" if minutes >= 1 else "under a minute"
        unknown = (f"; {', '.join(k + '=None' for k in uncounted)} (all) not counted: may take far longer"
                   if uncounted else "")
        guess = (f"roughly {took} on this machine's CPU (a rough scaling of its smoke-size time; a warm cache or a "
                 f"GPU is faster{unknown})")
    return f"Running {path.stem} for {', '.join(models)} with {sizes} into {out_dir}: {guess}."


def run_chapter(chapter: str, models: list[str], roles: dict[str, str], overrides: dict | None = None,
                name: str = "run", runs_dir: str | Path = "runs", progress: bool = True) -> Path:
    """Execute one chapter for ``models`` with papermill; returns the run folder.

    Every check of :func:`check_run` passes before anything is written or executed.
    """
    import time
    from datetime import datetime, timezone

    import jupytext
    import papermill

    from ifhelpers import results

    path = chapter_path(chapter)
    defaults = notebook_parameters(path)
    overrides = dict(overrides or {})
    out_dir = check_run(path, models, roles, overrides, name, runs_dir)
    print(run_plan(path, models, overrides, out_dir), flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    source = out_dir / f"{path.stem}.source.ipynb"
    jupytext.write(jupytext.read(path), source)
    params = {**overrides, "models": list(models), "roles": dict(roles), "results_dir": str(out_dir)}
    (out_dir / f"{path.stem}.parameters.yaml").write_text(yaml.safe_dump(params, sort_keys=True))
    started = time.time()
    results.write_provenance(out_dir, chapter=path.stem, **results.code_state(), parameters={**defaults, **params},
                             data=str(sources.mirror_root() or "online"), machine=results.machine(),
                             started=datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
                             finished=None, wall_s=None)
    executed = out_dir / f"{path.stem}.ipynb"
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=params, cwd=str(path.parent),
                                   progress_bar=progress, kernel_name="python3")
    except papermill.PapermillExecutionError as error:
        failed = f"{error.ename}: {str(error.evalue).splitlines()[0] if error.evalue else ''}"
        results.write_provenance(out_dir, path.stem, failed=failed)
        raise ChapterFailedError(f"{path.stem} stopped at cell {error.exec_count} with {failed}; the executed "
                                 f"notebook, traceback included, is {executed}.") from None
    source.unlink()
    now = time.time()
    results.write_provenance(out_dir, path.stem,
                             finished=datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"),
                             wall_s=round(now - started, 1))
    return out_dir


def _size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return sum(p.stat().st_size for p in files), len(files)


def cache_contents(root: Path | None = None) -> list[dict]:
    """What the user cache holds, one row per removable part: ``part`` (the name ``ifhelpers cache
    --remove`` takes), ``what``, ``size_mb``, ``files``. Converted and tuned models one by one
    (``models/<folder>``), forward passes by model (``activations/<model>``, read from each entry's
    ``about.json``), fine-tuning runs and training checkpoints as a whole."""
    import json

    from ifhelpers.data.sources import cache_root

    root = Path(root) if root is not None else cache_root()
    rows = []
    for folder in sorted(p for p in (root / "models").glob("*") if p.suffix != ".lock"):  # not filelock's files
        size, files = _size(folder)
        rows.append({"part": f"models/{folder.name}", "what": "model weights (converted or tuned by the book)",
                     "size_mb": size / 2**20, "files": files, "paths": [folder]})
    by_model: dict[str, list[Path]] = {}
    for about in sorted((root / "activations").glob("*/*/about.json")):
        try:
            model = json.loads(about.read_text())["model"].split("@")[0]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged: listed so it can be removed
            model = f"unreadable-{about.parent.parent.name[:12]}"
        by_model.setdefault(model, []).append(about.parent)
    for model, folders in sorted(by_model.items()):
        size, files = map(sum, zip(*(_size(f) for f in folders)))
        rows.append({"part": f"activations/{model}", "what": f"cached forward passes ({len(folders)} requests)",
                     "size_mb": size / 2**20, "files": files, "paths": folders})
    for kind, what in (("finetune", "BECEL classifier runs"), ("tuning", "training checkpoints (resume points)")):
        if (root / kind).is_dir() and any((root / kind).iterdir()):
            size, files = _size(root / kind)
            rows.append({"part": kind, "what": what, "size_mb": size / 2**20, "files": files, "paths": [root / kind]})
    return rows


def cache_parts(rows: list[dict], part: str) -> list[dict]:
    """The rows of :func:`cache_contents` that ``part`` names: itself, or every part under a prefix."""
    return [r for r in rows if r["part"] == part or r["part"].startswith(part.rstrip("/") + "/")]


def remove_from_cache(part: str, root: Path | None = None) -> list[Path]:
    """Delete one part of :func:`cache_contents` (``models/<folder>``, ``activations/<model>``,
    ``finetune``, ``tuning``) or every part under a prefix (``models``, ``activations``); returns the
    folders removed. ValueError naming the parts there are when nothing matches."""
    import shutil

    rows = cache_contents(root)
    chosen = cache_parts(rows, part)
    if not chosen:
        raise parameters.ParameterError(f"nothing in the cache is called {part!r}; parts: "
                                        f"{', '.join(r['part'] for r in rows) or '(the cache is empty)'}")
    removed = [path for r in chosen for path in r["paths"]]
    for path in removed:
        path.unlink() if path.is_symlink() else shutil.rmtree(path)
    return removed


def sweep(chapter_names: list[str], pair_names: list[str], executor: str = "local", runs_dir: str | Path = "runs",
          overrides: dict | None = None, slurm: dict | None = None, timeout_min: int = 240):
    """One :func:`run_chapter` job per (pair, chapter), submitted through submitit.

    ``executor`` is ``"slurm"`` (a cluster), ``"local"`` (subprocesses on this machine) or ``"debug"``
    (in this process, for tests). ``overrides`` (``--set``) go to each chapter that has the parameter (a
    name no chapter of the sweep has is refused). Every (pair, chapter) passes :func:`check_run` before any
    job is submitted; each pair's run folder is ``<runs_dir>/<pair>``, where every chapter keeps its own
    files and provenance. Returns the finished run folders.
    """
    import submitit

    overrides = overrides or {}
    if executor == "slurm":
        check_slurm()
    valid = {chapter: notebook_parameters(chapter_path(chapter)) for chapter in chapter_names}
    unknown = sorted(k for k in overrides if k in COMMON or not any(k in params for params in valid.values()))
    if unknown:
        raise SystemExit(f"Unknown parameters {unknown} for chapters {', '.join(chapter_names)}; valid: "
                         f"{', '.join(sorted({k for p in valid.values() for k in p} - set(COMMON)))}")
    jobs_args = []
    for pair_name in pair_names:
        pair = registry.pair(pair_name)
        for chapter in chapter_names:
            mine = {k: v for k, v in overrides.items() if k in valid[chapter]}
            try:
                out_dir = check_run(chapter_path(chapter), list(pair.members), {}, mine, pair_name, runs_dir)
            except (RunError, registry.RolesError, folders.ModelFolderError, ModelNotInstalledError,
                    sources.DataNotFoundError) as error:  # which job of the sweep, then the problem
                raise type(error)(f"pair {pair_name}, chapter {chapter_path(chapter).stem}: {error}") from None
            print(run_plan(chapter_path(chapter), list(pair.members), mine, out_dir), flush=True)
            jobs_args.append((chapter, list(pair.members), {}, mine, pair_name, str(runs_dir), False))
    cluster = None if executor == "slurm" else executor
    ex = submitit.AutoExecutor(folder=Path(runs_dir) / "_submitit", cluster=cluster)
    try:
        ex.update_parameters(timeout_min=timeout_min, **(slurm or {}))
    except (NameError, TypeError, ValueError) as error:  # submitit names the parameter it does not know
        raise RunError(f"--slurm: {str(error).splitlines()[0]}") from None
    try:
        jobs = ex.map_array(run_chapter, *zip(*jobs_args))
    except submitit.core.utils.FailedJobError as error:  # sbatch refused the array: what it said, nothing submitted
        cause = error.__cause__
        status = f" exit status {cause.returncode}" if isinstance(cause, subprocess.CalledProcessError) else ""
        said = str(error).strip().splitlines()
        raise RunError(f"Slurm refused the sweep (sbatch{status}{': ' + said[-1] if said else ''}); nothing was "
                       f"submitted.") from None
    return [job.result() for job in jobs]


def check_slurm(timeout: float = 20.0) -> None:
    """:class:`RunError` unless Slurm answers on this machine (``sinfo`` runs and exits 0), checked before any
    job of a ``--executor slurm`` sweep is submitted."""
    try:
        done = subprocess.run(["sinfo", "-h"], capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise RunError("--executor slurm: Slurm is not installed here (no sinfo on PATH); run the sweep on a "
                       "Slurm login node, or use --executor local.") from None
    except subprocess.TimeoutExpired:
        raise RunError(f"--executor slurm: sinfo did not answer within {timeout:g} s; check that slurmctld is "
                       f"running, or use --executor local.") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise RunError(f"--executor slurm: Slurm does not answer (sinfo exit status {done.returncode}"
                       f"{': ' + said[-1] if said else ''}); start slurmctld or use --executor local.")


def main(argv: list[str] | None = None) -> int:
    """The command line; a bad model, pair, parameter value, run name, runs folder or data mirror prints one
    line and exits with code 2; a chapter that fails once started, one line naming its executed notebook
    (code 1); an interruption (Ctrl-C), one line (code 130)."""
    try:
        return _main(argv)
    except (registry.UnknownModelError, registry.RolesError, folders.ModelFolderError, anatomy.AnatomyError,
            parameters.ParameterError, sources.DataSelectionError, sources.DataNotFoundError, RunError,
            ModelNotInstalledError) as error:
        message = str(error.args[0] if error.args else error)
    except SystemExit as stop:  # a malformed --models / --set: its message, with the same exit code 2
        if not isinstance(stop.code, str):
            raise  # argparse's own usage errors (code 2) and --help (code 0)
        message = stop.code
    except ChapterFailedError as error:  # not bad input: the chapter ran and failed (exit code 1)
        return say(str(error), 1)
    except KeyboardInterrupt:
        return say("interrupted. Every finished batch of forward passes and training epoch is kept: the same "
                   "command resumes from them.", 130)
    return say(message, 2)


def say(message: str, code: int) -> int:
    """Print ``message`` as the command line's problem lines and return the exit ``code``: one
    "ifhelpers:" line per problem; an indented line continues its problem (e.g. a command to copy)."""
    print("\n".join(line if line.startswith(" ") else f"ifhelpers: {line}" for line in message.splitlines()),
          file=sys.stderr)
    return code


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ifhelpers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("chapters", help="list the chapters and their parameters")
    run = sub.add_parser("run", help="execute one chapter for given models")
    run.add_argument("chapter")
    run.add_argument("--models", required=True, help="base=ID,ift=ID[,ift=ID...] or pair=NAME")
    run.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument("--name", help="run name (folder under --runs-dir); default: the model names")
    run.add_argument("--runs-dir", default="runs")
    run.add_argument("--trust-remote-code", action="store_true",
                     help="allow a model folder's own code to run (sets IFHELPERS_TRUST_REMOTE_CODE=1 for the chapter)")
    ca = sub.add_parser("cache", help="show what the user cache holds, or remove a part of it")
    ca.add_argument("--remove", metavar="PART", help="e.g. activations, activations/gemma-3-270m, models/NAME, tuning")
    ca.add_argument("--yes", action="store_true", help="remove without asking (otherwise only say what would go)")
    sw = sub.add_parser("sweep", help="run chapters x pairs through submitit")
    sw.add_argument("--chapters", required=True)
    sw.add_argument("--pairs", required=True)
    sw.add_argument("--executor", choices=["local", "slurm", "debug"], default="local")
    sw.add_argument("--runs-dir", default="runs")
    sw.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="a chapter parameter, as for run; it goes to every chapter of the sweep that has it")
    sw.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                    help="submitit Slurm parameters, e.g. slurm_partition=gpu, gpus_per_node=1")
    args = parser.parse_args(argv)

    if args.command == "chapters":
        for name, path in chapters().items():
            params = {k: v for k, v in notebook_parameters(path).items() if k not in COMMON}
            print(f"{name:18s} {path}")
            for key, value in params.items():
                print(f"    {key} = {value!r}")
        return 0
    if args.command == "cache":
        from ifhelpers.data.sources import cache_root

        if args.remove is not None:
            if not args.remove.strip():
                raise RunError("--remove is empty: give a part of the cache as `ifhelpers cache` lists it, e.g. "
                               "--remove tuning")
            if not args.yes:
                rows = cache_parts(cache_contents(), args.remove)
                if not rows:
                    remove_from_cache(args.remove)  # says what there is
                size = sum(r["size_mb"] for r in rows)
                print(f"Would remove {', '.join(r['part'] for r in rows)} ({size:.0f} MB); add --yes to remove.")
                return 0
            removed = remove_from_cache(args.remove)
            print(f"Removed {len(removed)} folder(s) under {cache_root()}.")
            return 0
        rows = cache_contents()
        print(f"User cache: {cache_root()}")
        for r in rows:
            print(f"  {r['part']:60s} {r['size_mb']:9.1f} MB {r['files']:6d} files  {r['what']}")
        print(f"  {'total':60s} {sum(r['size_mb'] for r in rows):9.1f} MB")
        return 0
    if args.command == "run":
        if args.trust_remote_code:
            os.environ[folders.TRUST_REMOTE_CODE] = "1"  # the chapter's kernel inherits it
        path = chapter_path(args.chapter)
        models, roles = parse_models(args.models)
        overrides = parse_overrides(args.set, notebook_parameters(path))
        name = args.name if args.name is not None else default_run_name(models, args.models)
        out = run_chapter(args.chapter, models, roles, overrides, name, args.runs_dir)
        print(f"Executed notebook and results in {out}")
        return 0
    bad = [item for item in args.slurm if not item.partition("=")[0].strip() or "=" not in item]
    if bad:
        raise SystemExit(f"--slurm takes KEY=VALUE (a submitit Slurm parameter, e.g. slurm_partition=gpu); got "
                         f"{bad[0]!r}")
    slurm = {k.strip(): parse_value(v) for k, _, v in (item.partition("=") for item in args.slurm)}
    chapter_names = args.chapters.split(",")
    every = {k: v for c in chapter_names for k, v in notebook_parameters(chapter_path(c)).items()}
    overrides = parse_overrides(args.set, every, "These chapters'")
    outs = sweep(chapter_names, args.pairs.split(","), args.executor, args.runs_dir, overrides, slurm=slurm)
    print("\n".join(str(o) for o in outs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
