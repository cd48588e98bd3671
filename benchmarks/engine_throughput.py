"""Engine throughput on the pocket models: naive loop, plain batched pass, shared-prefix pass, one run.

Workload: the book's shared ParaRel pass (every query of ``--n-per-relation`` facts per relation under
Table 3's three prompts, in each model's own format) with the book's request
(:data:`ifhelpers.model.probes.PARAREL_REQUEST`: states at every layer, top-10 next tokens), cache off,
the states kept in float32 (the book keeps them in bfloat16; here the arithmetic is compared).

* naive:  one text at a time, full logits at every position, ``output_hidden_states=True`` (what a
  first notebook would write), timed on ``--naive-texts`` of the prompts;
* plain:  :func:`ifhelpers.model.engine.run` with ``share_prefixes=False`` (batching only);
* shared: the same with prefix reuse (:mod:`ifhelpers.model.prefix`); its outputs are checked against
  the plain pass (top-1 identical, states to 1e-5 relative).

Tokens/s always counts the tokens of the full texts, so the columns compare wall times for the same
outputs. The trie bound is the speed-up a pass computing every distinct token prefix exactly once would
have over the plain pass (tokens / distinct prefixes); "of bound" is the share of it the shared pass
reaches. The roofline counts 2 FLOPs per non-embedding parameter per token at the fp32 matmul rate
measured here: what the hardware allows for the model body, whatever the software.

    python benchmarks/engine_throughput.py [--n-per-relation 8] [--naive-texts 150] [--models ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ifhelpers.data import pararel
from ifhelpers.model import engine, models, prefix, probes, tokens


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def non_embedding_params(lm) -> int:
    embedding = lm.model.get_input_embeddings().weight
    head = lm.model.get_output_embeddings().weight
    total = sum(p.numel() for p in lm.model.parameters())  # tied weights are counted once
    return total - embedding.numel() - (0 if head is embedding else head.numel())


def naive_tokens_per_second(lm, texts) -> float:
    n_tokens, start = 0, time.perf_counter()
    with torch.inference_mode():
        for text in texts:
            ids = lm.tokenizer(text, return_tensors="pt")
            lm.model(**ids, output_hidden_states=True)
            n_tokens += ids["input_ids"].shape[1]
    return n_tokens / (time.perf_counter() - start)


def timed(lm, texts, share: bool):
    start = time.perf_counter()
    out = engine.run(lm, texts, probes.pararel_request(states_dtype="float32"), cache=False, share_prefixes=share, progress=False)
    return out, time.perf_counter() - start


def distinct_prefixes(ids) -> int:
    return len({tuple(seq[:k]) for seq in ids for k in range(1, len(seq) + 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-per-relation", type=int, default=8, help="facts per relation (the book's default: 8)")
    parser.add_argument("--naive-texts", type=int, default=150)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m-instruct"])
    args = parser.parse_args()

    queries = pararel.load_queries(None, args.n_per_relation, seed=0)
    gflops = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul {gflops:.0f} GFLOP/s; "
          f"{len(queries)} queries x 3 prompts")
    print(f"{'model':22s} {'texts':>5s} {'tokens':>7s} {'plan':>7s} {'naive':>6s} {'plain':>6s} {'shared':>6s} "
          f"{'plain s':>7s} {'shared s':>8s} {'x plain':>7s} {'bound':>6s} {'of bound':>8s} {'plain %roof':>11s} {'check':>6s}")
    for name in args.models:
        lm = models.load(name, device="cpu")
        texts = probes.pararel_prompts(lm, queries)["prompt"].tolist()
        ids = [tokens.encode(lm.tokenizer, t) for t in texts]
        n_tokens = sum(map(len, ids))
        shared_plan = prefix.plan(ids, [len(s) - 1 for s in ids], **engine.PREFIX_RULE)
        planned = shared_plan.tokens_computed([len(s) for s in ids])
        bound = n_tokens / distinct_prefixes(ids)
        roofline = gflops * 1e9 / (2 * non_embedding_params(lm))
        naive = naive_tokens_per_second(lm, texts[:args.naive_texts])
        plain_out, plain_s = timed(lm, texts, share=False)
        shared_out, shared_s = timed(lm, texts, share=True)
        same = bool((plain_out["top_ids"][:, 0] == shared_out["top_ids"][:, 0]).all()) and \
            float(np.abs(plain_out["resid"] - shared_out["resid"]).max() / np.abs(plain_out["resid"]).max()) <= 1e-5
        speedup = plain_s / shared_s
        print(f"{name:22s} {len(texts):5d} {n_tokens:7d} {planned:7d} {naive:6.0f} {n_tokens / plain_s:6.0f} "
              f"{n_tokens / shared_s:6.0f} {plain_s:7.1f} {shared_s:8.1f} {speedup:6.2f}x {bound:5.1f}x "
              f"{100 * speedup / bound:7.0f}% {100 * n_tokens / plain_s / roofline:10.0f}% {'same' if same else 'DIFF':>6s}",
              flush=True)
    print("naive/plain/shared: tokens/s of the full texts; plan: tokens the shared pass computes; bound: the trie's "
          "speed-up over plain; plain %roof: the plain pass against the non-embedding roofline")


if __name__ == "__main__":
    main()
