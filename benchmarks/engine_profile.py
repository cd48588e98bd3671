"""Where the shared-prefix pass spends its time (issue #32): a profile, not a speed target.

Workload: the book's shared ParaRel pass, as in ``benchmarks/engine_throughput.py`` (every query of
``--n-per-relation`` facts per relation under Table 3's three prompts, the book's request, cache off). The
model is loaded and one shared pass runs untimed first (warm-up); then

1. the plain and the shared pass are timed once each (tokens/s of the full texts);
2. the shared pass runs under cProfile: the engine's and the prefix planner's own functions by cumulative
   time (where the time goes by phase: the prefix batches, the continuation batches, the recorder's hooks,
   the output head);
3. the shared pass runs under ``torch.profiler``: torch operators by self CPU time, and the matrix
   products grouped by input shape (how wide the batches are that carry the time).

    python benchmarks/engine_profile.py [--n-per-relation 4] [--model gemma-3-270m] [--top 15]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from engine_throughput import timed  # the same workload and request (this folder is on the path)
from ifhelpers.data import pararel
from ifhelpers.model import models, probes, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-per-relation", type=int, default=4)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()

    lm = models.load(args.model, device="cpu")
    texts = probes.pararel_prompts(lm, pararel.load_queries(None, args.n_per_relation, seed=0))["prompt"].tolist()
    n_tokens = sum(len(tokens.encode(lm.tokenizer, t)) for t in texts)
    timed(lm, texts[:200], share=True)  # warm-up
    seconds = {share: timed(lm, texts, share)[1] for share in (False, True)}
    print(f"{args.model}: {len(texts)} texts, {n_tokens} tokens, {torch.get_num_threads()} threads; plain "
          f"{n_tokens / seconds[False]:.0f} tok/s, shared {n_tokens / seconds[True]:.0f} tok/s "
          f"({seconds[False] / seconds[True]:.2f}x)")

    profiler = cProfile.Profile()
    profiler.runcall(timed, lm, texts, True)
    stats = pstats.Stats(profiler)
    print("\n== the shared pass by function (cumulative s; engine, prefix planner, recorder) ==")
    rows = [(cum, calls, f"{func[0].rsplit('/', 2)[-1]}:{func[2]}") for func, (calls, _, _, cum, _)
            in stats.stats.items() if "ifhelpers/model" in func[0]]
    for cum, calls, name in sorted(rows, reverse=True)[:args.top]:
        print(f"{cum:8.2f} s {calls:8d} calls  {name}")

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        timed(lm, texts, share=True)
    print("\n== torch operators by self CPU time ==")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    print("== matrix products and attention by input shape ==")
    by_shape = [e for e in prof.key_averages(group_by_input_shape=True)
                if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
                             "aten::scaled_dot_product_attention", "aten::linear", "aten::matmul")]
    for e in sorted(by_shape, key=lambda e: -e.self_cpu_time_total)[:args.top]:
        print(f"{e.self_cpu_time_total / 1e6:8.2f} s {e.count:7d} calls  {e.key:50s} {str(e.input_shapes)[:110]}")


if __name__ == "__main__":
    main()
