"""Our 9-setup MMLU scorer against EleutherAI's lm-evaluation-harness: same model, questions, setups, prompts.

The paper scores MMLU under 3 instructions x 3 orderings of the options (App. C.1). Here both sides score
the same >= 600 questions (:func:`ifhelpers.measure.mmlu.sample_questions`, spread over the 57
subjects) under the same 9 setups (:func:`ifhelpers.measure.mmlu.mmlu_setups`). lm-eval runs them
as 9 tasks of its own, one per setup, reading a CSV per setup (the options in that setup's order) and
rendering the prompt with its own template: the App. C.1 instruction, a blank line, the question, the
lettered options and "Answer:" (the plain, base-model format, so that lm-eval's rendering is exactly our
prompt; the chat wrapping is tested in tests/test_predictions.py). Both compare the log-probabilities
of " A" ... " D" as the next token.

The App. C.1 layout puts the instruction and the question before the options, so under one instruction
the three orderings share everything up to the first option, and all 9 setups of a question share the
model's beginning-of-text; our engine computes each shared prefix once (:mod:`ifhelpers.model.prefix`).

Each side runs in a process of its own (model load and scoring; our engine's cache off), so its wall
time and peak memory (maximum resident set size) are its own. The script prints both accuracies, the
number of identical predictions, the largest log-probability difference, the wall times and the peak
memory, and exits 1 unless every context is our prompt and every prediction is the same.

lm-eval computes the log-softmax over the whole vocabulary at every position of a batch, so on
gemma-3-270m (262,144 tokens) this script's default batch of 16 was killed for memory at 600 questions
on a 24 GiB machine (23 GiB resident); ``--batch-size 4`` runs there (peak 14,985 MiB).

    pip install -e ".[bench]"      # lm-eval, not a dependency of the book
    IFHELPERS_DATA=/path/to/shared/data python benchmarks/mmlu_vs_lm_eval.py \
        [--model smollm2-135m-instruct] [--n-questions 600] [--batch-size 16] [--plain-too]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ifhelpers.measure import mmlu  # noqa: E402
from ifhelpers.data import prompts, sources  # noqa: E402
from ifhelpers.model import models, registry, tokens  # noqa: E402

TASK_YAML = """\
task: {task}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {csv}
  keep_default_na: false
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{instruction}}}}\\n\\n{{{{question.strip()}}}}\\nA. {{{{choice0}}}}\\nB. {{{{choice1}}}}\\nC. {{{{choice2}}}}\\nD. {{{{choice3}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0
"""


def the_setups(n_questions: int, seed: int) -> pd.DataFrame:
    questions = mmlu.sample_questions(None, n_questions, seed)
    return mmlu.mmlu_setups(questions, n_shuffles=3, instruction_ids=(0, 1, 2), seed=seed)


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def side_ours(args, out: Path) -> None:
    start = time.perf_counter()
    lm = models.load(args.model, device="cpu")
    lm.spec = dataclasses.replace(lm.spec, prompt_format="base")  # the plain prompt lm-eval renders too
    setups = the_setups(args.n_questions, args.seed)
    loaded = time.perf_counter()
    if args.share == "off":
        os.environ["IFHELPERS_SHARE_PREFIXES"] = "0"
    results = mmlu.run_mmlu(lm, setups, cache=False, progress=False)
    end = time.perf_counter()
    results[["instruction", "shuffle", "question_id", "prompt", "prediction_index", "correct",
             "logprob_A", "logprob_B", "logprob_C", "logprob_D", "n_tokens"]].to_csv(out / "rows.csv", index=False)
    (out / "timing.json").write_text(json.dumps({"wall": end - start, "scoring": end - loaded,
                                                 "peak_mb": peak_memory_mb()}))


def write_tasks(folder: Path, setups: pd.DataFrame) -> dict[tuple[int, int], str]:
    """One lm-eval task per (instruction, ordering): a CSV with that setup's option order, and its YAML."""
    tasks = {}
    for (instruction, shuffle), part in setups.groupby(["instruction", "shuffle"], sort=True):
        task = f"ifbook_mmlu_i{instruction}_o{shuffle}"
        csv = folder / f"{task}.csv"
        pd.DataFrame({
            "question_id": part["question_id"], "instruction": [prompts.mmlu_instruction(s, instruction)
                                                                for s in part["subject"]],
            "question": part["question"], "choice0": part["A"], "choice1": part["B"], "choice2": part["C"],
            "choice3": part["D"], "answer": part["answer_index"].astype(int)}).to_csv(csv, index=False)
        (folder / f"{task}.yaml").write_text(TASK_YAML.format(task=task, csv=csv))
        tasks[(int(instruction), int(shuffle))] = task
    return tasks


def side_lm_eval(args, out: Path) -> None:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager
    from transformers import AutoTokenizer

    folder, _ = models.weights_location(registry.get(args.model))
    tok = AutoTokenizer.from_pretrained(folder)
    add_bos = tokens.encode(tok, "x")[:1] == [tok.bos_token_id]  # lm-eval must add a BOS exactly when we do
    setups = the_setups(args.n_questions, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tasks = write_tasks(Path(tmp), setups)
        start = time.perf_counter()
        result = simple_evaluate(
            model="hf", model_args=f"pretrained={folder},dtype=float32,device=cpu,add_bos_token={add_bos}",
            tasks=list(tasks.values()), num_fewshot=0, batch_size=args.batch_size, log_samples=True,
            task_manager=TaskManager(include_path=tmp), bootstrap_iters=0)
        wall = time.perf_counter() - start
    rows = []
    for (instruction, shuffle), task in tasks.items():
        part = setups[(setups["instruction"] == instruction) & (setups["shuffle"] == shuffle)].reset_index(drop=True)
        for sample in result["samples"][task]:
            arguments = sample["arguments"]
            context = arguments[0][0] if isinstance(arguments[0], (list, tuple)) else arguments["gen_args_0"]["arg_0"]
            logprobs = [float(r[0]) for r in sample["filtered_resps"]]
            rows.append({"instruction": instruction, "shuffle": shuffle,
                         "question_id": part.loc[int(sample["doc_id"]), "question_id"], "context": context,
                         "prediction_index": int(np.argmax(logprobs)), "acc": float(sample["acc"]),
                         **{f"logprob_{c}": v for c, v in zip("ABCD", logprobs)}})
    pd.DataFrame(rows).to_csv(out / "rows.csv", index=False)
    (out / "timing.json").write_text(json.dumps({"wall": wall, "peak_mb": peak_memory_mb()}))


def run_side(side: str, args, folder: Path, share: str = "on") -> dict:
    """One side in a process of its own: its rows, wall time (model load included) and peak memory."""
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, __file__, "--side", side, "--out", str(folder), "--model", args.model,
               "--n-questions", str(args.n_questions), "--seed", str(args.seed), "--batch-size", str(args.batch_size),
               "--share", share]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    timing = json.loads((folder / "timing.json").read_text())
    timing["process_wall"] = time.perf_counter() - start
    return {"rows": pd.read_csv(folder / "rows.csv", keep_default_na=False), **timing}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a registry model (pypi_gguf or local)")
    parser.add_argument("--n-questions", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="lm-eval's batch size")
    parser.add_argument("--plain-too", action="store_true", help="also time our engine without prefix reuse")
    parser.add_argument("--side", choices=["ours", "lm-eval"], help=argparse.SUPPRESS)
    parser.add_argument("--share", choices=["on", "off"], default="on", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        (side_ours if args.side == "ours" else side_lm_eval)(args, Path(args.out))
        return 0
    if sources.mirror_root() is None:
        raise SystemExit("Set IFHELPERS_DATA to the offline mirror (shared/data): both sides read its MMLU CSVs.")

    with tempfile.TemporaryDirectory() as tmp:
        ours = run_side("ours", args, Path(tmp) / "ours")
        plain = run_side("ours", args, Path(tmp) / "plain", share="off") if args.plain_too else None
        theirs = run_side("lm-eval", args, Path(tmp) / "lm-eval")
    key = ["instruction", "shuffle", "question_id"]
    both = ours["rows"].merge(theirs["rows"], on=key, suffixes=("", "_lm_eval"), validate="one_to_one")
    n = len(both)
    same_context = int((both["context"] == both["prompt"]).sum())
    same_prediction = int((both["prediction_index"] == both["prediction_index_lm_eval"]).sum())
    letters = [f"logprob_{c}" for c in "ABCD"]
    lp_diff = float(np.abs(both[letters].to_numpy() - both[[c + "_lm_eval" for c in letters]].to_numpy()).max())
    print(f"model {args.model}: {args.n_questions} questions x 9 setups = {n} prompts "
          f"(ours {len(ours['rows'])}, lm-eval {len(theirs['rows'])}), {ours['rows']['n_tokens'].sum()} tokens")
    print(f"accuracy          ours {100 * both['correct'].mean():.2f}%   lm-eval {100 * both['acc'].mean():.2f}%")
    print(f"identical         contexts {same_context}/{n}, predictions {same_prediction}/{n}; "
          f"largest |log p| difference {lp_diff:.2e}")
    print(f"wall (process)    ours {ours['process_wall']:.1f} s (scoring {ours['scoring']:.1f} s), "
          f"lm-eval {theirs['process_wall']:.1f} s (evaluate {theirs['wall']:.1f} s) -> "
          f"ours {theirs['process_wall'] / ours['process_wall']:.2f}x faster")
    if plain:
        print(f"without prefix reuse: ours {plain['process_wall']:.1f} s (scoring {plain['scoring']:.1f} s) -> "
              f"prefix reuse {plain['scoring'] / ours['scoring']:.2f}x on scoring")
    print(f"peak memory       ours {ours['peak_mb']:.0f} MB, lm-eval {theirs['peak_mb']:.0f} MB")
    ok = same_context == n and same_prediction == n
    print("AGREE" if ok else "DISAGREE: see the counts above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
