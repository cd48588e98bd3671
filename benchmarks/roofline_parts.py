"""Where the plain pass's time goes against the roofline: the model body's linear layers at the engine's
batch shapes, and the output head that a next-token request needs once per text. One run, one model.

``benchmarks/engine_throughput.py`` counts the roofline over the non-embedding parameters (2 FLOPs per
parameter per token at the square fp32 matmul rate measured in the same run). A request with ``top_k``
also sends every text's last state through the output embedding (262k rows on Gemma 3: 2 x 640 x 262,144
FLOPs per text) and takes a log-softmax and a top-k over the vocabulary; that work is outside the
roofline but inside the wall time. This script measures, on the book's shared ParaRel workload:

* the square matmul rate (the roofline's rate);
* the decoder's linear layers, each at ``--tokens`` rows (a batch under the engine's token budget);
* the head with log-softmax and top-10 at ``--rows`` rows (the engine's batch size);

and prints the ceiling those rates set for the plain pass as a share of the roofline: body time at the
roofline rate over (body time at the measured linear rates + head time). Attention, norms, padding and
hooks come on top of that, so the plain pass stays below the ceiling.

    python benchmarks/roofline_parts.py [--model gemma-3-270m] [--n-per-relation 8] [--tokens 2048] [--rows 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from engine_throughput import matmul_gflops, non_embedding_params  # the same roofline as that benchmark
from ifhelpers.data import pararel
from ifhelpers.model import models, probes, tokens


def seconds(fn, repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--n-per-relation", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=2048, help="rows of each body matmul")
    parser.add_argument("--rows", type=int, default=64, help="texts per head call (engine.run's max_batch_size)")
    args = parser.parse_args()

    lm = models.load(args.model, device="cpu")
    texts = probes.pararel_prompts(lm, pararel.load_queries(None, args.n_per_relation, seed=0))["prompt"].tolist()
    n_texts, n_tokens = len(texts), sum(len(tokens.encode(lm.tokenizer, t)) for t in texts)

    with torch.inference_mode():
        linears = [m for layer in lm.anatomy.decoder_layers(lm.model) for m in layer.modules()
                   if isinstance(m, torch.nn.Linear)]
        body_flops_per_token = 2 * sum(m.weight.numel() for m in linears)
        x = {k: torch.randn(args.tokens, k) for k in {m.in_features for m in linears}}
        shape_time = {}
        for m in linears:  # the layers repeat: time each distinct shape once
            shape = (m.in_features, m.out_features)
            if shape not in shape_time:
                shape_time[shape] = seconds(lambda m=m: m(x[m.in_features]))
        body_at_linears = sum(shape_time[(m.in_features, m.out_features)] for m in linears) / args.tokens

        head = lm.model.get_output_embeddings()
        last = torch.randn(args.rows, head.in_features)
        head_time = seconds(lambda: torch.log_softmax(head(last).float(), -1).topk(10, dim=-1)) / args.rows
        head_flops = 2 * head.weight.numel()

    square = matmul_gflops() * 1e9
    body_roofline_s = n_tokens * 2 * non_embedding_params(lm) / square
    body_s = n_tokens * body_at_linears
    head_s = n_texts * head_time
    print(f"{args.model}: {n_texts} texts, {n_tokens} tokens; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"square fp32 matmul {square / 1e9:.0f} GFLOP/s (the roofline's rate)")
    print(f"body linears at {args.tokens} rows: {body_flops_per_token / body_at_linears / 1e9:.0f} GFLOP/s "
          f"({body_roofline_s / body_s:.0%} of the square rate); {body_s:.1f} s for the workload "
          f"({body_roofline_s:.1f} s at the roofline)")
    print(f"head + log-softmax + top-10 at {args.rows} rows: {head_flops / head_time / 1e9:.0f} GFLOP/s; "
          f"{head_s:.1f} s for the workload; its FLOPs are {head_flops * n_texts / (body_flops_per_token * n_tokens):.1%}"
          f" of the body's")
    print(f"ceiling of the plain pass: {body_roofline_s / (body_s + head_s):.0%} of the roofline "
          f"(before attention, norms, padding and hooks)")


if __name__ == "__main__":
    main()
