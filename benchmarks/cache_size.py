"""What the engine's activation cache holds: MB per (model, request), with each array's row shape.

Reads only ``about.json`` and the ``.npz`` headers of every store under ``<cache>/activations`` (see
:mod:`ifhelpers.model.cache`), so it runs in seconds on a filled cache. Requests are named after the book's
constants in :mod:`ifhelpers.model.probes`; any other request (MMLU candidates, response scoring) is shown
by its key. States kept in bfloat16 (``Request.states_dtype``) show as ``uint16``, their 16 bits. Run it
after a cold ``make book`` to see what a build leaves:

    python benchmarks/cache_size.py [--cache $IFHELPERS_CACHE]
"""

from __future__ import annotations

import argparse
import collections
import json
import zipfile
from pathlib import Path

import numpy as np

from ifhelpers.data.sources import cache_root
from ifhelpers.model import probes

MB = 2**20


def request_names() -> dict[str, str]:
    """Request key -> the name of the book's constant that makes it (the first, where two share a key)."""
    named = {
        "PARAREL_REQUEST": probes.PARAREL_REQUEST,
        "PARAREL_REQUEST, last layer": probes.pararel_request("last"),
        "PARAREL_REQUEST, float32 states (caches before bfloat16)": probes.pararel_request(states_dtype="float32"),
        "PARAREL_REQUEST, last layer, float32 states (caches before bfloat16)":
            probes.pararel_request("last", states_dtype="float32"),
        "UPDATES_REQUEST": probes.UPDATES_REQUEST,
        "SUBJECT_REQUEST (every layer)": probes.SUBJECT_REQUEST,
        "LAST_STATE_REQUEST": probes.LAST_STATE_REQUEST,
    }
    out: dict[str, str] = {}
    for name, request in named.items():
        out.setdefault(request.key(), name)
    return out


def array_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[tuple, str]:
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(fh)
    return shape, str(dtype)


def store_rows(activations: Path) -> list[dict]:
    names = request_names()
    rows = []
    for about in sorted(activations.glob("*/*/about.json")):
        info = json.loads(about.read_text())
        sizes: collections.Counter = collections.Counter()
        shapes, n_rows, total = {}, 0, 0
        for part in about.parent.glob("part-*.npz"):
            total += part.stat().st_size
            with zipfile.ZipFile(part) as zf:
                for member in zf.infolist():
                    name = member.filename.removesuffix(".npy")
                    shape, dtype = array_header(zf, member)
                    sizes[name] += member.file_size
                    shapes[name] = f"{'x'.join(map(str, shape[1:])) or 'scalar'} {dtype}"
                    if name == "keys":
                        n_rows += shape[0]
        rows.append({"MB": total / MB, "rows": n_rows, "model": info["model"].split("@")[0],
                     "request": names.get(info["request"], f"other ({info['request'][:8]})"),
                     "arrays": ", ".join(f"{k} {shapes[k]} ({sizes[k] / MB:.0f} MB)" for k in sizes if k != "keys")})
    return sorted(rows, key=lambda r: -r["MB"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="the ifhelpers cache (default: $IFHELPERS_CACHE)")
    args = parser.parse_args()
    activations = args.cache / "activations" if args.cache else cache_root("activations")
    rows = store_rows(activations)
    by_request: collections.Counter = collections.Counter()
    for row in rows:
        by_request[row["request"]] += row["MB"]
    print(f"{activations}: {sum(r['MB'] for r in rows):,.0f} MB in {len(rows)} stores (model x request)\n")
    print("| request | MB |\n|---|---|")
    for request, size in by_request.most_common():
        print(f"| {request} | {size:,.1f} |")
    print("\n| MB | rows | model | request | arrays (row shape) |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['MB']:,.1f} | {row['rows']:,} | {row['model']} | {row['request']} | {row['arrays']} |")


if __name__ == "__main__":
    main()
