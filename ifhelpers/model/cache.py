"""The engine's on-disk cache of forward passes, keyed by content.

One folder per (model fingerprint, request); inside it, one ``part-*.npz`` file per computed batch.
Each part holds a ``keys`` array (one content key per text: a hash of the exact text and the
captured position) and one array per collected output, row-aligned with ``keys``. A part is written
atomically (temporary file, then rename) right after its batch is computed, so an interrupted run
keeps every finished batch and the next run computes only what is missing. A process computing
passes for a store holds its lock (``<folder>/parts.lock``), so a second process waits and then
reads them. Files are read with ``allow_pickle=False``.

A part is used only once it reads back whole (:func:`part_problem`, once per process and file): every
byte matches the zip checksums (a file cut short by a full disk or a crash fails), it holds ``keys``, its
name is the one its keys give (it is the part it claims to be), and each array has one row per key and the
same names, dtypes and row shape as the store's other parts. A part that fails is removed, said on one
line (:func:`ifhelpers.data.sources.discard`), and its keys count as missing, so they are computed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ifhelpers.data.sources import cache_lock, cache_root, discard


#: Part files (batches of forward passes) this process has written: how cold the cache was for a
#: chapter's execution (:func:`ifhelpers.results.cache_activity`).
PARTS_WRITTEN = 0
#: Training checkpoints (epochs of a BECEL classifier) this process has written, for the same report.
CHECKPOINTS_WRITTEN = 0


def count_checkpoint() -> None:
    """Record that this process trained and saved one checkpoint (see :data:`CHECKPOINTS_WRITTEN`)."""
    global CHECKPOINTS_WRITTEN
    CHECKPOINTS_WRITTEN += 1


def content_key(*parts) -> str:
    """A stable hex key for JSON-serialisable ``parts`` (texts, positions, request fields)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]


def file_problem(path: Path) -> str | None:
    """Why a file of a training checkpoint does not read back whole, or None: a safetensors file against its
    header (:func:`ifhelpers.model.folders.safetensors_header`), a JSON file that does not parse, a torch file
    (``.pt``, ``.pth``, ``.bin``: a zip archive) against its checksums. Other files are not checked."""
    from ifhelpers.model import folders

    try:
        if path.suffix == ".safetensors":
            folders.safetensors_header(path)
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix in (".pt", ".pth", ".bin"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"{path.name}: {bad} fails its checksum"
    except (folders.ModelFolderError, ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        return f"{path.name}: {str(error).removeprefix(str(path) + ': ') or type(error).__name__}"
    return None


def _dtype_name(dtype: np.dtype) -> str:
    """A dtype as a part's layout compares it: text by its kind only (its width follows the longest text)."""
    return dtype.kind if dtype.kind in "US" else str(dtype)


def part_layout(part: Path) -> tuple[list[str], dict[str, tuple]]:
    """The keys of a part file and its arrays' (dtype, row shape), after checking that it reads back whole:
    ValueError (or an OSError / zip error) saying why not. Reads every byte once (the zip checksums)."""
    with zipfile.ZipFile(part) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"{bad} fails its checksum")
        layout = {}
        for name in archive.namelist():
            with archive.open(name) as member:
                version = np.lib.format.read_magic(member)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(member)
            layout[name.removesuffix(".npy")] = (_dtype_name(dtype), tuple(shape))
    if "keys" not in layout:
        raise ValueError("no keys")
    with np.load(part, allow_pickle=False) as data:
        keys = data["keys"].tolist()
    if part.name != f"part-{content_key(keys)[:20]}.npz":
        raise ValueError("its keys are not the ones its name claims")
    short = [name for name, (_, shape) in layout.items() if not shape or shape[0] != len(keys)]
    if short:
        raise ValueError(f"{', '.join(short)} not one row per key")
    return keys, {name: (dtype, shape[1:]) for name, (dtype, shape) in layout.items() if name != "keys"}


@dataclass
class ActivationStore:
    """The cached outputs of one model under one request."""

    folder: Path
    _index: dict[str, tuple[Path, int]] = field(default_factory=dict, repr=False)
    _parts: set[Path] = field(default_factory=set, repr=False)
    _layout: str | None = field(default=None, repr=False)  # the arrays' names, dtypes and row shapes (JSON)

    def __post_init__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.refresh()

    def refresh(self) -> None:
        """Index the part files not indexed yet (e.g. written by another process since this store opened), each
        once it reads back whole (:func:`part_layout`) with the layout most of the store's parts share; a part
        that does not is discarded (:func:`ifhelpers.data.sources.discard`) and its keys stay missing."""
        new = [part for part in sorted(self.folder.glob("part-*.npz")) if part not in self._parts]
        read = {}
        for part in new:
            try:
                read[part] = _VERIFIED.get(_stamp(part)) or part_layout(part)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
                discard(part, str(error) or type(error).__name__)
        layouts = [json.dumps(sorted(layout.items())) for _, layout in read.values()]
        if self._layout is None and layouts:
            self._layout = max(layouts, key=layouts.count)  # ties: the first part's
        for part, (keys, layout) in read.items():
            if json.dumps(sorted(layout.items())) != self._layout:
                discard(part, f"arrays {layout} where the store's other parts hold {dict(json.loads(self._layout))}")
                continue
            _VERIFIED[_stamp(part)] = (keys, layout)
            self._add_to_index(part, keys)

    def lock(self):
        """The store's lock (:func:`ifhelpers.data.sources.cache_lock`), held while a process computes passes
        for it: two processes that need the same passes compute them once."""
        return cache_lock(self.folder / "parts", f"forward passes of {self.folder.parent.name[:12]}/{self.folder.name[:12]}")

    def _add_to_index(self, part: Path, keys: list[str]) -> None:
        self._parts.add(part)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (part, row))

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def write(self, keys: list[str], arrays: dict[str, np.ndarray]) -> Path:
        """Save one batch's outputs (rows aligned with ``keys``) as a new part file."""
        name = f"part-{content_key(keys)[:20]}.npz"
        target = self.folder / name
        tmp = self.folder / f".{name}.{os.getpid()}.tmp.npz"
        try:
            np.savez(tmp, keys=np.asarray(keys), **arrays)
            os.replace(tmp, target)
        except BaseException:  # a full disk or an interruption leaves no half-written file behind
            tmp.unlink(missing_ok=True)
            raise
        global PARTS_WRITTEN
        PARTS_WRITTEN += 1
        layout = {name: (_dtype_name(np.asarray(a).dtype), tuple(np.shape(a)[1:])) for name, a in arrays.items()}
        self._layout = self._layout or json.dumps(sorted(layout.items()))
        _VERIFIED[_stamp(target)] = (list(keys), layout)
        self._add_to_index(target, list(keys))
        return target

    def read(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The outputs for ``keys``, stacked in the order given (every key must be present)."""
        missing = [k for k in keys if k not in self._index]
        if missing:
            raise KeyError(f"{len(missing)} keys are not in the cache at {self.folder}")
        by_part: dict[Path, list[tuple[int, int]]] = {}
        for position, key in enumerate(keys):
            part, row = self._index[key]
            by_part.setdefault(part, []).append((position, row))
        out: dict[str, np.ndarray] = {}
        for part, pairs in by_part.items():
            positions, rows = map(np.asarray, zip(*pairs))
            with np.load(part, allow_pickle=False) as data:
                for name in data.files:
                    if name == "keys":
                        continue
                    values = data[name]
                    if name not in out:
                        out[name] = np.empty((len(keys), *values.shape[1:]), dtype=values.dtype)
                    out[name][positions] = values[rows]
        return out


#: Part files this process read back whole (or wrote), by path, size and modification time: their keys and
#: layout, so that a part is checked once per process.
_VERIFIED: dict[tuple, tuple[list[str], dict]] = {}


def _stamp(part: Path) -> tuple:
    info = part.stat()
    return str(part), info.st_size, info.st_mtime_ns


def _store_folder(model_fingerprint: str, request_key: str, root: str | Path | None) -> Path:
    root = Path(root) if root is not None else cache_root("activations")
    return root / content_key(model_fingerprint) / request_key


def store_for(model_fingerprint: str, request_key: str, root: str | Path | None = None) -> ActivationStore:
    """The store of one model and request under ``root`` (default: ``<ifhelpers cache>/activations``)."""
    folder = _store_folder(model_fingerprint, request_key, root)
    folder.mkdir(parents=True, exist_ok=True)
    about = folder / "about.json"
    if not about.exists():
        about.write_text(json.dumps({"model": model_fingerprint, "request": request_key}, indent=1))
    return ActivationStore(folder)


def existing_store(model_fingerprint: str, request_key: str, root: str | Path | None = None) -> ActivationStore | None:
    """:func:`store_for`'s store if an earlier run made it, else None (and no folder is made)."""
    folder = _store_folder(model_fingerprint, request_key, root)
    return ActivationStore(folder) if folder.is_dir() else None


@contextlib.contextmanager
def missing_keys(store: ActivationStore | None, keys: list[str]):
    """The keys of ``keys`` that ``store`` does not hold yet (each once, in order of first appearance), with
    the store's lock held for the block while there are any, and the store re-read once the lock is held
    (another process may have computed them meanwhile). Without a store (``None``: no cache) every key is
    missing and nothing is locked. The block computes the missing keys and writes them to the store."""
    todo = list(dict.fromkeys(k for k in keys if store is None or k not in store))
    if store is None or not todo:
        yield todo
        return
    with store.lock():
        store.refresh()
        yield [k for k in todo if k not in store]
