"""Instruction-tuning data: T0's templated tasks and free-form LIMA / Alpaca (for the tune-it chapter).

The paper's introduction explains the consistency of instruction-tuned models by their data: the
same task is verbalised in many surface forms (T0's "prompt templates"). The tune-it-yourself
chapter tests that by training on this data, so the loaders keep what the test needs:

* :func:`load_t0` -- one row per example of the T0 (P3) training mixture, with its ``task`` (the
  dataset, e.g. ``imdb``) and ``template`` (e.g. ``imdb_Reviewer_Enjoyment``). A task's templates are
  the paraphrased verbalisations. Mirror: ``instructions/t0/<template>.jsonl``; online: the same
  files of ``yizhongw/self-instruct`` at the commit pinned in ``SOURCES.md``.
* :func:`load_freeform` -- single-turn LIMA conversations and Alpaca examples, with no templates.

Every row has ``prompt`` (the user turn), ``response`` and ``source``; T0's ``<|endoftext|>`` end
marker is removed (the training format adds the model's own end-of-turn marker).
"""

from __future__ import annotations

import json
import os

import pandas as pd

from ifhelpers.data import sources

__all__ = ["T0_TASKS", "load_t0", "load_freeform", "task_of_template"]

#: The datasets of the T0 mixture in the mirror (its paraphrase-identification tasks were removed
#: upstream, to keep them out of BECEL's evaluation). A template file is named ``<task>_<template>``.
T0_TASKS = (
    "adversarial_qa_dbert", "adversarial_qa_dbidaf", "adversarial_qa_droberta", "ag_news", "amazon_polarity",
    "app_reviews", "common_gen", "commonsense_qa", "cosmos_qa", "dbpedia_14", "dream", "gigaword", "imdb",
    "kilt_tasks_hotpotqa", "qasc", "quarel", "quartz", "ropes", "rotten_tomatoes", "samsum", "sciq",
    "social_i_qa", "trec", "wiki_bio", "wiki_qa", "wiqa", "xsum", "yelp_review_full",
)

_T0 = ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23",
       "data/finetuning/t0_train_50k/data_per_template")
_FREEFORM = {
    "lima": sources.GitHubFile("RealDuxy/LLaMA-Efficient-Tuning", "a77303570994c3a3a2a0c2faae7fc089cac05629",
                               "data/lima.json"),
    "alpaca": sources.GitHubFile("hiyouga/LLaMA-Factory", "ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30",
                                 "data/alpaca_en_demo.json"),
}
_FREEFORM_MIRROR = {"lima": "instructions/lima/lima.json", "alpaca": "instructions/alpaca/alpaca_en_demo.json"}
_END = "<|endoftext|>"


def task_of_template(template: str) -> str:
    """The T0 task (dataset) a template file belongs to: the longest :data:`T0_TASKS` prefix."""
    matches = [t for t in T0_TASKS if template == t or template.startswith(t + "_")]
    if not matches:
        raise sources.DataSelectionError(
            f"T0 template {template!r} belongs to none of the known tasks: {', '.join(T0_TASKS)}.")
    return max(matches, key=len)


def _t0_templates(data_dir) -> list[str]:
    root = sources.mirror_root(data_dir)
    if root is not None:
        folder = root / "instructions" / "t0"
        names = sorted(p.stem for p in folder.glob("*.jsonl"))
        if not names:
            raise sources.DataNotFoundError(
                f"No T0 template files (*.jsonl) in {folder}.\n  what to do: point {sources.ENV_DATA} at a "
                f"complete copy of shared/data (see its SOURCES.md, row instructions/t0).")
        return names
    listing = sources.cache_root() / "github" / "self-instruct-t0-listing.json"
    if not listing.is_file():
        repo, commit, _ = _T0
        sources.download(f"https://api.github.com/repos/{repo}/git/trees/{commit}?recursive=1", listing)
    tree = json.loads(listing.read_text())["tree"]
    prefix = _T0[2] + "/"
    return sorted(item["path"][len(prefix):-len(".jsonl")] for item in tree
                  if item["path"].startswith(prefix) and item["path"].endswith(".jsonl"))


def load_t0(tasks=None, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """T0 training examples: ``task, template, prompt, response, source, line``.

    ``tasks`` restricts to some of :data:`T0_TASKS` (an unknown one lists the valid ones).
    """
    if tasks is not None:
        for task in tasks:
            sources.choose("T0 task", task, T0_TASKS)
    rows, malformed = [], []
    for template in _t0_templates(data_dir):
        task = task_of_template(template)
        if tasks is not None and task not in tasks:
            continue
        online = sources.GitHubFile(_T0[0], _T0[1], f"{_T0[2]}/{template}.jsonl")
        path = sources.locate(f"instructions/t0/{template}.jsonl", data_dir, online, what="T0 template file")
        records, bad = sources.read_jsonl(path, required=["prompt", "completion"], nonempty=["prompt", "completion"])
        malformed += [(path, line, why) for line, why in bad]
        for rec in records:
            response = rec["completion"].removesuffix(_END).strip()
            if response:
                rows.append({"task": task, "template": template, "prompt": rec["prompt"].strip(),
                             "response": response, "source": "t0", "line": rec["__line__"]})
    frame = pd.DataFrame(rows)
    for path, line, why in malformed:
        sources.note_malformed(frame, [(line, why)], "T0", path)
    return frame


def load_freeform(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Single-turn free-form examples of LIMA and Alpaca: ``prompt, response, source, line``.

    LIMA conversations with earlier turns (``history``) are left out: the chapter trains on one
    user turn and one model turn. Alpaca's ``input`` follows its instruction after a blank line.
    """
    rows, malformed = [], []
    for name, online in _FREEFORM.items():
        path = sources.locate(_FREEFORM_MIRROR[name], data_dir, online, what=f"{name} instruction data")
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise sources.DataFormatError(f"{path} is not a JSON list of examples ({err.msg}).") from err
        bad = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict) or not str(rec.get("instruction", "")).strip() or not str(rec.get("output", "")).strip():
                bad.append((i + 1, "no instruction or output"))
                continue
            if rec.get("history"):
                continue
            prompt = rec["instruction"].strip() + (f"\n\n{rec['input'].strip()}" if str(rec.get("input", "")).strip() else "")
            rows.append({"prompt": prompt, "response": rec["output"].strip(), "source": name, "line": i + 1})
        malformed.append((path, bad))
    frame = pd.DataFrame(rows)
    for path, bad in malformed:
        sources.note_malformed(frame, bad, "free-form instruction data", path)
    return frame
