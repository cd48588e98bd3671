"""Engine throughput on the pocket models against a naive loop, measured in the same run.

Naive loop: one text at a time, full logits at every position, ``output_hidden_states=True``
(what a first notebook would write). Engine: :func:`ifhelpers.model.engine.run` with the request the
ParaRel chapters use (states at every layer, MHSA/MLP updates, top-10 next tokens), cache off.
Texts: ParaRel queries in each model's own Table 3 prompt format (the book's main workload).

The roofline counts 2 FLOPs per non-embedding parameter per token at the fp32 matmul rate measured
here, so it is what the hardware allows for this model, whatever the software.

    python benchmarks/engine_throughput.py [--n-texts 240] [--models gemma-3-270m smollm2-135m-instruct]
"""

from __future__ import annotations

import argparse
import time

import torch

import ifhelpers as ifh
from ifhelpers.model import engine, models, probes
from ifhelpers.data import pararel


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


def engine_tokens_per_second(lm, texts, request) -> float:
    n_tokens = sum(len(ifh.model.tokens.encode(lm.tokenizer, t)) for t in texts)
    start = time.perf_counter()
    engine.run(lm, texts, request, cache=False, progress=False)
    return n_tokens / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-texts", type=int, default=240)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m-instruct"])
    args = parser.parse_args()

    queries = pararel.load_queries(n_per_relation=2, seed=0).sample(n=args.n_texts // 3, random_state=0)
    gflops = matmul_gflops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 matmul {gflops:.0f} GFLOP/s")
    header = f"{'model':24s} {'tokens':>7s} {'naive':>8s} {'last-only':>10s} {'engine':>8s} {'x naive':>8s} {'roofline':>9s} {'% roof':>7s}"
    print(header)
    for name in args.models:
        lm = models.load(name, device="cpu")
        texts = probes.pararel_prompts(lm, queries)["prompt"].tolist()
        n_tokens = sum(len(ifh.model.tokens.encode(lm.tokenizer, t)) for t in texts)
        roofline = gflops * 1e9 / (2 * non_embedding_params(lm))
        naive = naive_tokens_per_second(lm, texts)
        plain = engine_tokens_per_second(lm, texts, engine.Request(top_k=1))
        full = engine_tokens_per_second(lm, texts, probes.PARAREL_REQUEST)
        print(f"{name:24s} {n_tokens:7d} {naive:8.0f} {plain:10.0f} {full:8.0f} {full / naive:7.1f}x "
              f"{roofline:9.0f} {100 * full / roofline:6.0f}%")
    print("tokens/s; 'last-only': engine with only the top-1 next token; 'engine': the ParaRel request "
          "(states at every layer, MHSA/MLP updates, top-10)")


if __name__ == "__main__":
    main()
