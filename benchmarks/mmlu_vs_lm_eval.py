"""Our zero-shot MMLU scorer against EleutherAI's lm-evaluation-harness: same model, questions and prompt.

Both score the same local safetensors folder (a pocket model as the book converts it), the same rows of
the offline mirror's MMLU CSVs and the same prompt: instruction 0 of App. C.1, the options in their
original order, zero-shot, ending in "Answer:" (the plain, base-model format, so that lm-eval's own
rendering gives the identical string; the chat wrapping is tested in tests/test_predictions.py). Both
compare the log-probabilities of " A" ... " D" as the next token. lm-eval reads the CSVs itself through a
custom task (``dataset_path: csv`` + ``data_files``) written to a temporary folder.

The script checks that lm-eval's contexts are exactly our prompts, prints both accuracies (they must
agree within 0.5 points), the largest difference of a letter's log-probability, and the wall times:
each side end to end (model load + scoring, our engine with its cache off) and our scoring alone.

    pip install lm-eval==0.4.13     # not a dependency of ifhelpers
    IFHELPERS_DATA=/path/to/shared/data python benchmarks/mmlu_vs_lm_eval.py \
        [--model smollm2-135m-instruct] [--subjects ...] [--limit 40] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ifhelpers.data import mmlu, prompts, sources
from ifhelpers.model import models, registry, tokens
from ifhelpers.chapters import predictions# noqa: E402

SUBJECTS = ["us_foreign_policy", "global_facts", "astronomy", "high_school_geography"]

TASK_YAML = """\
task: {task}
dataset_path: csv
dataset_kwargs:
  data_files:
    test: {csv}
  keep_default_na: false
test_split: test
output_type: multiple_choice
description: {description}
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{choice0}}}}\\nB. {{{{choice1}}}}\\nC. {{{{choice2}}}}\\nD. {{{{choice3}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0
"""


def write_tasks(folder: Path, subjects: list[str], data_root: Path) -> dict[str, str]:
    """One lm-eval task per subject; the description is instruction 0 of App. C.1 and a blank line."""
    names = {}
    for subject in subjects:
        task = f"ifbook_mmlu_{subject}"
        description = prompts.MMLU_INSTRUCTIONS[0].format(mmlu.format_subject(subject)) + "\n\n"
        (folder / f"{task}.yaml").write_text(TASK_YAML.format(
            task=task, csv=data_root / "mmlu" / "test" / f"{subject}_test.csv", description=json.dumps(description)))
        names[subject] = task
    return names


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads): less sensitive to other jobs than wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_lm_eval(folder: str, tasks: dict[str, str], task_dir: Path, limit: int, batch_size: int, add_bos: bool):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    start, cpu = time.perf_counter(), cpu_seconds()
    result = simple_evaluate(
        model="hf", model_args=f"pretrained={folder},dtype=float32,device=cpu,add_bos_token={add_bos}",
        tasks=list(tasks.values()), num_fewshot=0, batch_size=batch_size, limit=limit, log_samples=True,
        task_manager=TaskManager(include_path=str(task_dir)), bootstrap_iters=0)
    return result, time.perf_counter() - start, cpu_seconds() - cpu


def run_ours(name: str, subjects: list[str], limit: int):
    start, cpu = time.perf_counter(), cpu_seconds()
    lm = models.load(name, device="cpu")
    lm.spec = dataclasses.replace(lm.spec, prompt_format="base")  # the plain prompt lm-eval renders too
    questions = mmlu.load_mmlu("test", subjects)
    questions = questions.groupby("subject", sort=False).head(limit).reset_index(drop=True)
    setups = predictions.mmlu_setups(questions, n_shuffles=1, instruction_ids=(0,))
    loaded = time.perf_counter()
    results = predictions.run_mmlu(lm, setups, cache=False, progress=False)
    end = time.perf_counter()
    return lm, results, end - start, end - loaded, cpu_seconds() - cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a registry model (pypi_gguf or local)")
    parser.add_argument("--subjects", nargs="+", default=SUBJECTS)
    parser.add_argument("--limit", type=int, default=40, help="first N questions of each subject")
    parser.add_argument("--batch-size", type=int, default=8, help="lm-eval's batch size")
    parser.add_argument("--lm-eval-first", action="store_true", help="run lm-eval before our scorer")
    args = parser.parse_args(argv)

    data_root = sources.mirror_root()
    if data_root is None:
        raise SystemExit("Set IFHELPERS_DATA to the offline mirror (shared/data): both sides read its MMLU CSVs.")
    folder, _ = models.weights_location(registry.get(args.model))
    print(f"model folder: {folder}\nsubjects: {', '.join(args.subjects)}; first {args.limit} questions each")

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    add_bos = tokens.encode(tok, "x")[:1] == [tok.bos_token_id]  # lm-eval must add a BOS exactly when we do
    with tempfile.TemporaryDirectory() as tmp:
        tasks = write_tasks(Path(tmp), args.subjects, Path(data_root))
        if args.lm_eval_first:
            result, lm_eval_total, lm_eval_cpu = run_lm_eval(folder, tasks, Path(tmp), args.limit, args.batch_size,
                                                             add_bos)
        _, ours, ours_total, ours_scoring, ours_cpu = run_ours(args.model, args.subjects, args.limit)
        if not args.lm_eval_first:
            result, lm_eval_total, lm_eval_cpu = run_lm_eval(folder, tasks, Path(tmp), args.limit, args.batch_size,
                                                             add_bos)

    # Join lm-eval's samples to our rows: doc_id is the row of the subject's CSV, as in our question_id.
    ours = ours.assign(row=ours["question_id"].str.rsplit("/", n=1).str[1].astype(int)).set_index(["subject", "row"])
    mismatched, pred_diff, lp_diff, n = [], 0, 0.0, 0
    lm_eval_correct = []
    for subject, task in tasks.items():
        for sample in result["samples"][task]:
            row = ours.loc[(subject, int(sample["doc_id"]))]
            context = sample["arguments"][0][0] if isinstance(sample["arguments"][0], (list, tuple)) else \
                sample["arguments"]["gen_args_0"]["arg_0"]
            if context != row["prompt"]:
                mismatched.append((subject, int(sample["doc_id"]), context[-60:], row["prompt"][-60:]))
            theirs = np.array([float(r[0]) for r in sample["filtered_resps"]])
            mine = row[[f"logprob_{c}" for c in "ABCD"]].to_numpy(dtype=float)
            lp_diff = max(lp_diff, float(np.abs(theirs - mine).max()))
            pred_diff += int(np.argmax(theirs) != row["prediction_index"])
            lm_eval_correct.append(float(sample["acc"]))
            n += 1
    acc_lm_eval = 100 * float(np.mean(lm_eval_correct))
    acc_ours = 100 * float(ours["correct"].mean())
    print(f"\nquestions: {n} (ours {len(ours)})")
    print(f"accuracy  ours {acc_ours:.2f}%   lm-eval {acc_lm_eval:.2f}%   difference {acc_ours - acc_lm_eval:+.2f} points")
    print(f"contexts differing from our prompt: {len(mismatched)}; predictions differing: {pred_diff}; "
          f"largest |log p| difference: {lp_diff:.2e}")
    for m in mismatched[:5]:
        print("  context differs:", m)
    print(f"wall time end to end: ours {ours_total:.1f} s, lm-eval {lm_eval_total:.1f} s "
          f"-> ours is {lm_eval_total / ours_total:.2f}x faster (our scoring alone {ours_scoring:.1f} s)")
    print(f"CPU time end to end:  ours {ours_cpu:.1f} s, lm-eval {lm_eval_cpu:.1f} s "
          f"-> ours uses {lm_eval_cpu / ours_cpu:.2f}x less CPU")
    print(f"torch threads: {torch.get_num_threads()}; lm-eval batch size {args.batch_size}; our engine batches "
          f"by a padded-token budget ({os.environ.get('IFHELPERS_BATCH_TOKENS', 4096)} tokens on CPU)")
    ok = abs(acc_ours - acc_lm_eval) <= 0.5 and not mismatched
    print("AGREE" if ok else "DISAGREE: see the differences above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
