"""Where the book's data comes from: the offline mirror, or the canonical online sources.

One setting decides it. A folder holding the offline mirror (the layout of
``shared/data``, described in its ``SOURCES.md``) is given either as the ``data_dir=``
argument of any loader or through the environment variable ``IFHELPERS_DATA``; the
argument wins. With neither, loaders go online:

* Hugging Face datasets (``cais/mmlu``, TaPaCo, the SNLI train split) through the ``datasets``
  library, which keeps its own cache;
* raw GitHub files at the commits pinned in :data:`GITHUB_SOURCES` (ParaRel, BECEL),
  downloaded once into :func:`cache_root` (``platformdirs.user_cache_dir("ifhelpers")``,
  overridable with ``IFHELPERS_CACHE``).

Errors say what was expected, every place that was looked at, and what to do:

* :class:`DataNotFoundError` (a ``FileNotFoundError``): a file is missing;
* :class:`DataFormatError` (a ``ValueError``): a file lacks a column, or nothing in it parses;
* :class:`DataSelectionError` (a ``ValueError``): an unknown relation, subject, task or split,
  or a selection that leaves no rows; the message lists the valid choices.

Rows that do not parse are never dropped silently: the loaders count them, warn with
:class:`MalformedRowsWarning`, and record the count in ``frame.attrs["n_malformed"]``
(and the line numbers and reasons in ``frame.attrs["malformed"]``).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "ENV_DATA",
    "ENV_CACHE",
    "GITHUB_SOURCES",
    "HF_SOURCES",
    "DataNotFoundError",
    "DataFormatError",
    "DataSelectionError",
    "MalformedRowsWarning",
    "GitHubFile",
    "mirror_root",
    "check_mirror",
    "cache_root",
    "discard",
    "describe_source",
    "locate",
    "download",
    "load_hf",
    "choose",
    "rng_for",
    "read_jsonl",
    "read_delimited",
    "note_malformed",
]

ENV_DATA = "IFHELPERS_DATA"
"""Environment variable naming the offline mirror folder (``shared/data``)."""

ENV_CACHE = "IFHELPERS_CACHE"
"""Environment variable overriding the download cache folder."""

GITHUB_SOURCES = {
    # name: (owner/repo, pinned commit, folder inside the repo); see shared/data/SOURCES.md
    "pararel_patterns": (
        "yanaiela/pararel",
        "cb5554678457beb5ac163d888f1ce8cf174b3f0b",
        "data/pattern_data/graphs_json",
    ),
    "pararel_trex": (
        "yanaiela/pararel",
        "cb5554678457beb5ac163d888f1ce8cf174b3f0b",
        "data/trex_lms_vocab",
    ),
    "becel": ("MJ-Jang/BECEL", "f5bdd1196e46323e6ec3f4e651bcad78b1883b04", "data"),
}
"""Raw GitHub sources at the commits pinned in ``SOURCES.md``."""

HF_SOURCES = {
    # name: (Hugging Face dataset id, config or None)
    "mmlu": ("cais/mmlu", "all"),
    "tapaco": ("community-datasets/tapaco", "en"),  # formerly the script dataset "tapaco"
    "snli": ("stanfordnlp/snli", None),  # formerly "snli"
}
"""Hugging Face Hub sources used when no mirror is given."""

USER_AGENT = "ifhelpers/0.1 (ifbook reproduction of Fierro et al. 2024; python-requests)"


class DataNotFoundError(FileNotFoundError):
    """A data file is missing: the message names the file, where it looked, and what to do."""


class DataFormatError(ValueError):
    """A data file does not have the expected columns, or none of its rows parse."""


class DataSelectionError(ValueError):
    """An unknown name (relation, subject, task, split) or a selection with no rows."""


class MalformedRowsWarning(UserWarning):
    """Some rows of a data file could not be parsed; they were counted and left out."""


@dataclass(frozen=True)
class GitHubFile:
    """One file of a public GitHub repository at a pinned commit."""

    repo: str
    commit: str
    path: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"

    @classmethod
    def from_source(cls, source: str, filename: str) -> "GitHubFile":
        repo, commit, folder = GITHUB_SOURCES[source]
        return cls(repo, commit, f"{folder}/{filename}")


# --------------------------------------------------------------------------- locations


def _setting(data_dir) -> tuple[Path | None, str]:
    """The mirror folder and a phrase saying which setting gave it."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), f"data_dir={str(data_dir)!r}"
    env = os.environ.get(ENV_DATA, "").strip()
    if env:
        return Path(env).expanduser(), f"{ENV_DATA}={env!r}"
    return None, "no mirror set (online mode)"


def mirror_root(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The offline mirror folder, or ``None`` for online mode.

    ``data_dir`` wins over the ``IFHELPERS_DATA`` environment variable. A setting that
    points at a folder that does not exist raises :class:`DataNotFoundError` rather than
    silently going online.
    """
    root, how = _setting(data_dir)
    if root is None:
        return None
    if not root.is_dir():
        raise DataNotFoundError(
            f"The offline data mirror folder does not exist.\n"
            f"  expected: a folder with the layout of shared/data (see its SOURCES.md)\n"
            f"  looked in: {root} (from {how})\n"
            f"  what to do: set {ENV_DATA}=/path/to/shared/data (or pass data_dir=...), "
            f"or unset {ENV_DATA} to download from the canonical online sources."
        )
    return root


def check_mirror(relpaths: Sequence[str], data_dir: str | os.PathLike | None = None) -> Path | None:
    """The mirror (:func:`mirror_root`), once each of ``relpaths`` (files or folders inside it, e.g. the
    ones a chapter reads) is there: :class:`DataNotFoundError` naming every missing one otherwise. In
    online mode (no mirror set) nothing is checked and None is returned."""
    root = mirror_root(data_dir)
    if root is None:
        return None
    missing = [rel for rel in relpaths if not (root / rel).exists()]
    if missing:
        raise DataNotFoundError(
            f"The offline data mirror at {root} lacks {', '.join(missing)}.\n"
            f"  what to do: point {ENV_DATA} (or data_dir=) at a complete copy of shared/data (see its "
            f"SOURCES.md), or unset it to download from the canonical online sources."
        )
    return root


def cache_root(*parts: str) -> Path:
    """The user cache of ifhelpers, joined with ``parts``: ``$IFHELPERS_CACHE`` (``~`` expanded) or
    ``platformdirs.user_cache_dir("ifhelpers")``. The one place that decides where downloads,
    converted models, forward passes, checkpoints and tuned models are kept."""
    env = os.environ.get(ENV_CACHE, "").strip()
    if env:
        return Path(env).expanduser().joinpath(*parts)
    import platformdirs

    return Path(platformdirs.user_cache_dir("ifhelpers")).joinpath(*parts)


@contextmanager
def cache_lock(target: str | os.PathLike, what: str = ""):
    """Hold ``<target>.lock`` (a ``filelock`` lock) while one cache item is made, so that two processes
    (two notebooks, two ``ifhelpers run``) that need the same item make it once: the second waits, says
    so, and then finds the item made. Every maker re-checks for its item after acquiring the lock. The
    operating system releases the lock of a killed process, so a crash never leaves it held."""
    from filelock import FileLock, Timeout

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{target}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"Another process is making {what or target.name}; waiting for it to finish ({target}).", flush=True)
        lock.acquire()
    try:
        yield target
    finally:
        lock.release()


def discard(path: Path, reason: str, what: str = "cache part") -> None:
    """Remove a damaged cache file (or folder) and say so on one line: it is made again from scratch."""
    print(f"ifhelpers: the {what} {path} does not read back whole ({reason}); it is removed and computed again.",
          flush=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def describe_source(data_dir: str | os.PathLike | None = None) -> str:
    """One line for a rendered notebook: where the data comes from under the current setting, without the
    building machine's paths (a reader's copy of the book does not show where its builder kept the data)."""
    root = mirror_root(data_dir)
    if root is None:
        return "online sources (GitHub at pinned commits, Hugging Face), downloaded once into the user cache"
    how = "data_dir" if data_dir is not None else ENV_DATA
    return f"the offline mirror ({how})"


def locate(
    relpath: str,
    data_dir: str | os.PathLike | None = None,
    online: GitHubFile | None = None,
    what: str = "data file",
) -> Path:
    """Path of a data file: in the mirror, or downloaded once from ``online`` into the cache.

    ``relpath`` is the file's path inside the mirror (e.g. ``"pararel/patterns/P19.jsonl"``).
    With a mirror set, the file must be there (no silent fallback to the network). Without
    one, ``online`` says where to download it from; a file with no online counterpart
    raises :class:`DataNotFoundError` explaining that it exists only in the mirror.
    """
    root, how = _setting(data_dir)
    if root is not None:
        mirror_root(data_dir)  # raises a clear error when the folder itself is missing
        path = root / relpath
        if path.is_file():
            return path
        raise DataNotFoundError(
            f"Missing {what}.\n"
            f"  expected: {relpath} inside the offline mirror\n"
            f"  looked in: {path} (mirror from {how})\n"
            f"  what to do: point {ENV_DATA} (or data_dir=) at a complete copy of shared/data, "
            f"or unset it to download"
            + (f" from {online.url}" if online else " from the canonical online source")
            + "."
        )
    if online is None:
        raise DataNotFoundError(
            f"Missing {what}: {relpath} exists only in the offline mirror, and no mirror is set.\n"
            f"  looked in: {ENV_DATA} (unset) and no data_dir argument\n"
            f"  what to do: set {ENV_DATA}=/path/to/shared/data or pass data_dir=..."
        )
    dest = cache_root() / "github" / online.repo.replace("/", "__") / online.commit / online.path
    if dest.is_file():
        return dest
    try:
        with cache_lock(dest, what):
            if not dest.is_file():
                download(online.url, dest)
    except Exception as err:  # network down, 404, ...
        raise DataNotFoundError(
            f"Missing {what}: {relpath}; no mirror is set and the download failed.\n"
            f"  looked in: {dest} (cache), {online.url} (online: {err})\n"
            f"  what to do: set {ENV_DATA}=/path/to/shared/data (the offline mirror), "
            f"or retry when {online.url} is reachable."
        ) from err
    return dest


def download(url: str, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` atomically (a partial file is never left behind)."""
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    response = requests.get(url, timeout=timeout, headers={"User-Agent": USER_AGENT})
    response.raise_for_status()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(response.content)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return dest


def load_hf(name: str, split: str, config: str | None = None) -> pd.DataFrame:
    """One split of a Hugging Face dataset as a DataFrame (online mode only).

    Needs the optional ``datasets`` package; its own cache avoids repeated downloads.
    """
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise DataNotFoundError(
            f"Online mode needs the 'datasets' package to fetch {name!r} ({config or 'default'}, "
            f"split {split!r}).\n"
            f"  what to do: pip install datasets, or set {ENV_DATA}=/path/to/shared/data "
            f"(the offline mirror)."
        ) from err
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # pragma: no cover - needs the network
        raise DataNotFoundError(
            f"Could not load Hugging Face dataset {name!r} (config {config!r}, split {split!r}).\n"
            f"  looked in: the Hugging Face Hub and the datasets cache ({err})\n"
            f"  what to do: set {ENV_DATA}=/path/to/shared/data (the offline mirror), "
            f"or retry online."
        ) from err
    return ds.to_pandas()


# --------------------------------------------------------------------------- choices, seeds


def choose(kind: str, value, valid: Iterable, where: str = "") -> object:
    """Check ``value`` is one of ``valid``; otherwise raise a :class:`DataSelectionError`."""
    valid = list(valid)
    if value in valid:
        return value
    shown = ", ".join(map(repr, valid[:60])) + (" ..." if len(valid) > 60 else "")
    raise DataSelectionError(
        f"Unknown {kind} {value!r}" + (f" (looked in {where})" if where else "") + ".\n"
        f"  valid choices ({len(valid)}): {shown}"
    )


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``keys`` (stable across runs).

    Loaders seed one generator per relation / subject / question from this, so a
    subsample does not depend on the order of calls or on which other items were asked for.
    """
    words = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(str(k).encode("utf-8")) for k in keys]
    return np.random.default_rng(words)


# --------------------------------------------------------------------------- readers

_PARSED: dict = {}


def file_key(path: Path, *extra) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size) + extra


def read_jsonl(
    path: Path, required: Sequence[str], nonempty: Sequence[str] = ()
) -> tuple[list[dict], list[tuple[int, str]]]:
    """Records of a JSON-lines file, and the malformed lines as ``(line number, reason)``.

    Each record gets a ``"__line__"`` key: its 1-based line number in the file.
    A line is malformed when it is not a JSON object, lacks a ``required`` key, or has an
    empty value for a key in ``nonempty``. Blank lines are skipped. Never unpickles.
    """
    key = file_key(path, "jsonl", tuple(required), tuple(nonempty))
    if key in _PARSED:
        records, bad = _PARSED[key]
        return [dict(r) for r in records], list(bad)
    records, bad = [], []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                bad.append((lineno, f"not JSON ({err.msg})"))
                continue
            if not isinstance(rec, dict):
                bad.append((lineno, "not a JSON object"))
                continue
            missing = [k for k in required if k not in rec]
            if missing:
                bad.append((lineno, f"missing key(s) {missing}"))
                continue
            empty = [k for k in nonempty if not isinstance(rec[k], str) or not rec[k].strip()]
            if empty:
                bad.append((lineno, f"empty or non-string value for {empty}"))
                continue
            rec["__line__"] = lineno
            records.append(rec)
    _PARSED[key] = (records, bad)
    return [dict(r) for r in records], list(bad)


def read_delimited(
    path: Path, required: Sequence[str], sep: str = ",", what: str = "table"
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """A CSV/TSV file as strings, and its malformed rows as ``(line number, reason)``.

    Uses the ``csv`` module with standard double-quote handling (fields may span lines).
    A row whose field count differs from the header's is malformed. Two extra columns:
    ``__line__`` (1-based line where the row starts) and ``__row__`` (0-based ordinal of the
    data row, malformed ones included, so ids built from it do not shift). A header lacking a
    ``required`` column raises :class:`DataFormatError`. Repeated header names get a
    ``.1`` suffix (BECEL's ``mrpc/symmetric.tsv`` repeats ``index``).
    """
    key = file_key(path, "delim", sep, tuple(required))
    if key in _PARSED:
        frame, bad = _PARSED[key]
        return frame.copy(), list(bad)
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration:
            raise DataFormatError(f"{what}: {path} is empty; expected a header with {list(required)}")
        seen: dict[str, int] = {}
        columns = []
        for name in header:
            name = name.strip()
            if name in seen:
                seen[name] += 1
                columns.append(f"{name}.{seen[name]}")
            else:
                seen[name] = 0
                columns.append(name)
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataFormatError(
                f"{what}: {path} lacks column(s) {missing}.\n"
                f"  expected: {list(required)}\n  found: {columns}"
            )
        rows, bad = [], []
        start = reader.line_num
        ordinal = -1
        for row in reader:
            lineno = start + 1
            start = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            ordinal += 1
            if len(row) != len(columns):
                bad.append((lineno, f"{len(row)} fields, header has {len(columns)}"))
                continue
            rows.append(row + [lineno, ordinal])
    frame = pd.DataFrame(rows, columns=columns + ["__line__", "__row__"], dtype=object)
    for name in columns:
        frame[name] = frame[name].astype(str)
    frame["__line__"] = frame["__line__"].astype(int)
    frame["__row__"] = frame["__row__"].astype(int)
    _PARSED[key] = (frame, bad)
    return frame.copy(), list(bad)


def note_malformed(
    frame: pd.DataFrame, malformed: list[tuple[int, str]], what: str, path: Path | str
) -> pd.DataFrame:
    """Record malformed rows on ``frame.attrs`` and warn when there are any.

    Sets ``attrs["n_malformed"]`` (an int) and ``attrs["malformed"]`` (a list of
    ``(file, line, reason)``). Appends to counts already there, so several files add up.
    """
    entries = [(str(path), line, reason) for line, reason in malformed]
    frame.attrs["malformed"] = list(frame.attrs.get("malformed", [])) + entries
    frame.attrs["n_malformed"] = int(frame.attrs.get("n_malformed", 0)) + len(entries)
    if entries:
        first = "; ".join(f"line {ln}: {why}" for _, ln, why in entries[:3])
        warnings.warn(
            f"{what}: {len(entries)} malformed row(s) in {path} left out ({first}"
            + (" ..." if len(entries) > 3 else "")
            + "); see .attrs['malformed']",
            MalformedRowsWarning,
            stacklevel=3,
        )
    return frame
