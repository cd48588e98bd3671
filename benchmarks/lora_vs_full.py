"""LoRA against full fine-tuning, measured: one base model, one instruction dataset, the book's one recipe.

Both arms train through :func:`ifhelpers.train.tuning.fit` on the same ``--n-examples`` chats of
``--dataset`` (:func:`ifhelpers.train.tuning.dataset_pool`: offline the mirror's subset or labelled
stand-in, contamination-checked), with the same steps, batches, seed and chat format; they differ in
the method and its learning rate: LoRA at the recipe's default (:class:`ifhelpers.model.tuned.Recipe`),
full fine-tuning at ``--full-learning-rate`` (2e-5 by default, open-instruct's rate for full
fine-tuning). No checkpoint is written (training alone is timed). Printed per arm:

* tokens/s (the chats' tokens, every epoch, over the training wall time), wall time, trainable
  parameters, peak memory (resident set of the process during training, ``VmHWM``; on a GPU the
  peak allocated GPU memory too);
* the loss per target token on ``--n-heldout`` held-out chats of the same dataset, before and after;
* how far training moved the model on a fixed set of ParaRel queries (Table 3's base prompt,
  ``--n-per-relation`` facts of ``--relations``): the mean KL divergence KL(base || tuned) of the
  next-token distribution, the share of queries whose top-1 token is unchanged, and ParaRel accuracy and
  consistency (§3, Table 2: pairs of paraphrases of a fact that agree) of the base and the tuned model.

    python benchmarks/lora_vs_full.py [--model gemma-3-270m] [--dataset stanford-alpaca] [--n-examples 64]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import numpy as np
import pandas as pd
import torch

from ifhelpers.data import pararel
from ifhelpers.metrics.pararel import pararel_macro
from ifhelpers.model import engine, models, probes, tuned
from ifhelpers.train import tuning


def pararel_outputs(model, tokenizer, name: str, queries: pd.DataFrame) -> tuple[np.ndarray, pd.Series]:
    """(next-token log-probabilities at the end of each ParaRel prompt, ParaRel accuracy and consistency)."""
    lm = models.wrap(model, tokenizer, name)
    frame, _ = probes.run_pararel(lm, queries, prompt_ids=(0,), resid_layers="last", cache=False, progress=False)
    logits = engine.run(lm, frame["prompt"].tolist(), engine.Request(next_token_logits=True), cache=False,
                        progress=False)["next_token_logits"]
    return torch.log_softmax(torch.from_numpy(logits).double(), -1).numpy(), pararel_macro(
        probes.pararel_predictions(frame))


def movement(base_logprobs: np.ndarray, logprobs: np.ndarray) -> dict:
    """Mean KL(base || tuned) of the next-token distributions (nats) and the share of unchanged top-1 tokens."""
    kl = (np.exp(base_logprobs) * (base_logprobs - logprobs)).sum(-1)
    return {"KL(base||tuned) nats": float(kl.mean()),
            "top-1 unchanged": float((base_logprobs.argmax(-1) == logprobs.argmax(-1)).mean())}


def compare(args) -> pd.DataFrame:
    """Train both arms and measure them; one row per model (the base first)."""
    tokenizer = tuning.base_tokenizer(args.model)
    lora = tuned.Recipe(name="lora-vs-full-lora", base=args.model, mixture=args.dataset, n_examples=args.n_examples,
                        max_tokens=args.max_tokens, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    full = dataclasses.replace(lora, name="lora-vs-full-full", method="full", learning_rate=args.full_learning_rate)
    pool = tuning.dataset_pool(tokenizer, args.dataset, args.max_tokens)
    train = tuning.mixture(pool, args.dataset, args.n_examples, args.seed)
    heldout = pool.drop(train.index).sample(args.n_heldout, random_state=args.seed)
    queries = pararel.load_queries(args.relations, n_per_relation=args.n_per_relation, seed=args.seed)
    print(f"{pool.attrs['source']}: {len(train)} training and {len(heldout)} held-out chats of {len(pool)} that fit "
          f"{args.max_tokens} tokens; {len(queries)} ParaRel queries", flush=True)

    model, _ = tuning.base_model(args.model)
    before = tuning.target_loss(model, tokenizer, heldout, args.max_tokens, args.batch_size)
    base_logprobs, base_scores = pararel_outputs(model, tokenizer, "base", queries)
    rows = [{"model": f"{args.model} (base)", "held-out loss": before, "ParaRel accuracy": base_scores["accuracy"],
             "ParaRel consistency": base_scores["consistency"]}]
    for recipe in (lora, full):
        model, _ = tuning.base_model(args.model)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            trained, log = tuning.fit(model, tokenizer, train, recipe, work, progress=args.progress, checkpoints=False)
        if recipe.method == "lora":
            trained = trained.merge_and_unload()
        logprobs, scores = pararel_outputs(trained, tokenizer, recipe.method, queries)
        rows.append({"model": f"{recipe.method} (lr {recipe.learning_rate:g})",
                     "trainable params": log["trainable_parameters"],
                     "steps": log["steps"], "train tokens": log["tokens"] * recipe.epochs,
                     "tokens/s": log["tokens_per_second"], "wall s": log["seconds"],
                     "peak RSS GiB": log["peak_rss_gib"], "peak GPU GiB": log["peak_gpu_gib"],
                     "held-out loss": tuning.target_loss(trained, tokenizer, heldout, args.max_tokens, args.batch_size),
                     "ParaRel accuracy": scores["accuracy"], "ParaRel consistency": scores["consistency"],
                     **movement(base_logprobs, logprobs), "total s": time.perf_counter() - start})
        del model, trained
    return pd.DataFrame(rows).set_index("model")


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="gemma-3-270m", help="a base model: registry name or local folder")
    parser.add_argument("--dataset", default="stanford-alpaca", help="one of the paper's instruction datasets")
    parser.add_argument("--n-examples", type=int, default=64)
    parser.add_argument("--n-heldout", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=tuned.Recipe.batch_size)
    parser.add_argument("--max-tokens", type=int, default=tuned.Recipe.max_tokens)
    parser.add_argument("--full-learning-rate", type=float, default=2e-5)
    parser.add_argument("--relations", nargs="*", default=["P17", "P19", "P36", "P101", "P103", "P106"])
    parser.add_argument("--n-per-relation", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    table = compare(args)
    with pd.option_context("display.width", 250, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        print(table.T.to_string())
    return table


if __name__ == "__main__":
    main()
