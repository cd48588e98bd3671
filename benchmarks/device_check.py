"""The engine on an accelerator: agreement with the CPU, throughput with and without prefix reuse, one chapter.

For each pocket model: the book's ParaRel request (:data:`ifhelpers.model.probes.PARAREL_REQUEST`, its
states kept in float32, so that the devices' arithmetic is compared, not bfloat16's rounding) on the
same prompts, first on the CPU in fp32 (the reference the book's numbers come from), then on ``--device``
in each dtype, with prefix reuse on and off. Each row gives the wall time, tokens per second, the top-1
agreement with the CPU reference and the largest difference of the residual states relative to their
scale. Then one chapter at its smoke size (``notebooks/smoke.yaml``) through papermill on the device.
One table is printed at the end (and written to ``--out`` as CSV).

    benchmarks/device_check.sh [--device cuda] [--n-texts 600] [--chapter predictions|none]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ifhelpers.data import pararel  # noqa: E402
from ifhelpers.model import engine, models, probes, registry, tokens  # noqa: E402

POCKET = tuple(registry.pair("pocket").members)


def timed_run(lm, texts, share: bool) -> tuple[dict, float]:
    import torch

    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = engine.run(lm, texts, probes.pararel_request(states_dtype="float32"), cache=False, share_prefixes=share, progress=False)
    if lm.device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def model_rows(name: str, queries: pd.DataFrame, device: str, dtypes: list[str]) -> list[dict]:
    reference_lm = models.load(name, device="cpu", dtype="float32")
    texts = probes.pararel_prompts(reference_lm, queries)["prompt"].tolist()
    n_tokens = sum(len(tokens.encode(reference_lm.tokenizer, t)) for t in texts)
    reference, _ = timed_run(reference_lm, texts, share=True)
    del reference_lm
    rows = []
    for dtype in dtypes:
        lm = models.load(name, device=device, dtype=dtype)
        timed_run(lm, texts[:8], share=False)  # warm-up (kernels, allocator)
        for share in (False, True):
            out, seconds = timed_run(lm, texts, share)
            scale = float(np.abs(reference["resid"]).max())
            rows.append({
                "what": name, "device": device, "dtype": dtype, "prefix reuse": "on" if share else "off",
                "texts": len(texts), "tokens": n_tokens, "seconds": round(seconds, 2),
                "tokens/s": round(n_tokens / seconds), "top-1 agreement": float(
                    np.mean(out["top_ids"][:, 0] == reference["top_ids"][:, 0])),
                "max rel. diff (resid)": float(np.abs(out["resid"] - reference["resid"]).max() / scale),
            })
        del lm
    return rows


def chapter_row(chapter: str, device: str) -> dict:
    """One smoke-size chapter through ``ifhelpers run`` (papermill) with the device forced."""
    from ifhelpers import cli

    path = cli.chapter_path(chapter)
    sizes = yaml.safe_load((cli.NOTEBOOKS / "smoke.yaml").read_text()).get(path.stem, {})
    settings = [item for key, value in sizes.items() for item in ("--set", f"{key}={cli.yaml_flow(value)}")]
    with tempfile.TemporaryDirectory() as runs:
        command = [sys.executable, "-m", "ifhelpers.cli", "run", chapter, "--models", "pair=pocket",
                   "--name", "device-check", "--runs-dir", runs, *settings]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=REPO, env={**os.environ, "IFHELPERS_DEVICE": device},
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
    return {"what": f"chapter {path.stem} (smoke size)", "device": device, "seconds": round(seconds, 1),
            "status": "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"}


def main(argv=None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=None,
                        help="default: float32 bfloat16 on an accelerator, float32 on the CPU")
    parser.add_argument("--models", nargs="+", default=list(POCKET))
    parser.add_argument("--n-texts", type=int, default=600, help="ParaRel prompts (3 per query)")
    parser.add_argument("--chapter", default="predictions", help="a chapter to run at smoke size, or 'none'")
    parser.add_argument("--out", default=None, help="also write the table here (CSV)")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device: run on the accelerator or pass --device cpu")
    dtypes = args.dtypes or (["float32", "bfloat16"] if args.device != "cpu" else ["float32"])
    queries = pararel.load_queries(n_per_relation=2, seed=0).sample(n=max(1, args.n_texts // 3), random_state=0)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}", flush=True)
    rows = [row for model in args.models for row in model_rows(model, queries, args.device, dtypes)]
    if args.chapter != "none":
        rows.append(chapter_row(args.chapter, args.device))
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.fillna("").to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)
    failed = table.get("status", pd.Series(dtype=str)).fillna("ok").ne("ok").any()
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
