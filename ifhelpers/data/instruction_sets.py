"""The paper's ten instruction datasets, as open-instruct turned them into chat messages.

The paper's instruction-tuned models are LLaMA-7b tuned by open-instruct (Wang et al. 2023) on ten
public datasets, one model each (Table 1: baize, cot, dolly, flan-v2, gpt4-alpaca, oasst1,
sharegpt, sni, stanford-alpaca, unnatural-instructions). :data:`SETS` records, for each, where it
lives online (what open-instruct downloaded), how open-instruct converted it into chat messages
(``instructions/OPEN_INSTRUCT_FORMATS.md`` in the mirror, read from open-instruct's code at commit
e44fcf58, June 2023), and what the offline mirror holds of it:

* ``subset``: part of the dataset itself (Stanford Alpaca: 5,000 of its 52K examples);
* ``stand-in``: other data in the dataset's place (T0 for flan-v2, the Flan v2 CoT source files for
  cot, 999 Alpaca-format examples of unverified origin for gpt4-alpaca);
* ``online only``: nothing (dolly, oasst1, sharegpt, sni, unnatural-instructions, baize); offline,
  :func:`load` raises one line that says where the dataset lives and which stand-in the mirror
  offers (LIMA for the chat sets oasst1 and sharegpt, with ``stand_in=True``).

:func:`load` gives one row per example: ``dataset`` (the paper's name), ``id``, ``messages`` (a list
of ``{"role": "user"|"assistant", "content": ...}`` turns, as open-instruct stored them; it strips
each content when it renders the chat) and ``source``, the label of what was loaded: offline data is
never called by the paper's name without it. Every set goes through the one contamination check
(:func:`ifhelpers.data.contamination.contamination`), which drops the examples that contain
ParaRel facts, MMLU questions or BECEL inputs.

Open-instruct's random choices (templates, samples) come from one ``random.seed(42)`` stream over
all datasets in directory order, which cannot be re-drawn dataset by dataset; here each dataset has
its own stream, :func:`ifhelpers.data.sources.rng_for` of the seed (42 by default) and its name.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from ifhelpers.data import instructions, sources
from ifhelpers.data.contamination import FLAGS, contamination

__all__ = ["OFFLINE_STATUS", "InstructionSet", "SETS", "table", "OnlineOnlyError", "checked", "load", "to_messages",
           "instruction_example", "few_shot_example", "inputs_targets_example"]

OFFLINE_STATUS = ("subset", "stand-in", "online only")


@dataclass(frozen=True)
class InstructionSet:
    """One of the paper's instruction datasets: its sources, open-instruct's conversion, the mirror's part."""

    name: str  # the paper's name for the dataset (and for the LLaMA-7b model tuned on it)
    online: str  # where the dataset lives: what open-instruct downloaded
    formatting: str  # how open-instruct turned a record into chat messages
    offline_file: str | None  # the mirror's file (or folder) of the subset or stand-in
    offline: str  # one of OFFLINE_STATUS
    label: str  # what the mirror's data is called wherever it is used

    def __post_init__(self):
        sources.choose("offline status", self.offline, OFFLINE_STATUS)


_RANDOM_TEMPLATES = "one of open-instruct's weighted random instruction templates (instruction, input, output)"
_INPUTS_TARGETS = "user = inputs (+ a newline unless it ends with one or with ':'), assistant = targets"

SETS: dict[str, InstructionSet] = {s.name: s for s in (
    InstructionSet(
        "baize", "github.com/project-baize/baize-chatbot data/{alpaca,medical,quora,stackoverflow}_chat_data.json",
        "each record's input split on [|Human|], each part on [|AI|] into a user and an assistant turn; "
        "the preamble and parts without [|AI|] dropped",
        None, "online only", "baize (online only)"),
    InstructionSet(
        "cot", "Flan v2 CoT submix cot_zsopt.jsonl and cot_fsopt.jsonl (AI2 Beaker copies)",
        f"50,000 sampled from each file; {_INPUTS_TARGETS}",
        "instructions/flan_cot", "stand-in",
        "cot stand-in: the Flan v2 CoT source files (question, rationale, answer) in one CoT layout"),
    InstructionSet(
        "dolly", "Hugging Face databricks/databricks-dolly-15k (databricks-dolly-15k.jsonl)",
        f"{_RANDOM_TEMPLATES}, with context as the input",
        None, "online only", "dolly (online only)"),
    InstructionSet(
        "flan-v2", "flan_v2_resampled_100k.jsonl, AI2's 100K resample of the Flan 2022 collection (AI2 Beaker)",
        f"all 100K; {_INPUTS_TARGETS}",
        "instructions/t0", "stand-in", "flan-v2 stand-in: T0 part of the Flan collection"),
    InstructionSet(
        "gpt4-alpaca", "github.com/Instruction-Tuning-with-GPT-4/GPT-4-LLM data/alpaca_gpt4_data.json",
        _RANDOM_TEMPLATES,
        "instructions/alpaca/alpaca_en_demo.json", "stand-in",
        "gpt4-alpaca stand-in: 999 Alpaca-format examples of unverified origin"),
    InstructionSet(
        "oasst1", "Hugging Face OpenAssistant/oasst1 (2023-04-12_oasst_ready.trees.jsonl.gz)",
        "every path from a tree's root to each assistant message (prompter = user), all languages",
        "instructions/lima/lima.json", "online only", "oasst1/sharegpt stand-in: LIMA"),
    InstructionSet(
        "sharegpt", "Hugging Face anon8231489123/ShareGPT_Vicuna_unfiltered "
                    "(HTML_cleaned_raw_dataset/sg_90k_part{1,2}_html_cleaned.json)",
        "conversations cut into chunks of at most 2048 LLaMA tokens (whole human/assistant pairs); "
        "conversations whose turns do not alternate human/gpt dropped",
        "instructions/lima/lima.json", "online only", "oasst1/sharegpt stand-in: LIMA"),
    InstructionSet(
        "sni", "github.com/allenai/natural-instructions (master), tasks of splits/xlingual/train_tasks.txt",
        f"tasks without _mmmlu_; 80 instances per task at most: 60 with {_RANDOM_TEMPLATES[4:]} "
        "(definition as the instruction), 20 with two positive examples (few-shot)",
        None, "online only", "sni (online only)"),
    InstructionSet(
        "stanford-alpaca", "github.com/tatsu-lab/stanford_alpaca alpaca_data.json (52K)",
        _RANDOM_TEMPLATES,
        "instructions/stanford_alpaca/alpaca_data_5000.jsonl", "subset",
        "stanford-alpaca (mirror: 5,000-example subset)"),
    InstructionSet(
        "unnatural-instructions", "github.com/orhonovich/unnatural-instructions data/core_data.zip",
        f"every instance of every core example, the instance's constraints after the instruction; "
        f"{_RANDOM_TEMPLATES}",
        None, "online only", "unnatural-instructions (online only)"),
)}


def table() -> pd.DataFrame:
    """:data:`SETS` as a table, one row per dataset (for the book)."""
    return pd.DataFrame([asdict(s) for s in SETS.values()]).set_index("name").fillna("-")


class OnlineOnlyError(sources.DataNotFoundError):
    """An instruction dataset that exists only online was asked for offline; the message says where it
    lives and which stand-in the mirror offers."""


# --------------------------------------------------------------------------------------------------
# Open-instruct's conversions into messages

#: Open-instruct's prompt templates for an instruction with an input: (prompt, completion, weight).
WITH_INPUT = (
    ("{instruction}\n\n{input}\n\n", "{output}", 0.2),
    ("{instruction}\n{input}\n\n", "{output}", 0.1),
    ("{instruction}\n{input}\n", "{output}", 0.1),
    ("{instruction}\n\nInput: {input}\n\nOutput:", "{output}", 0.05),
    ("{instruction}\nInput: {input}\nOutput:", "{output}", 0.05),
    ("{instruction}\n{input}\n\nResponse:", "{output}", 0.05),
    ("{instruction}\n\nAdditional Context:\n{input}\n\nAnswer:", "{output}", 0.05),
    ("Task: {instruction}\nInput: {input}\nOutput:", "{output}", 0.05),
    ("Task: {instruction}\n\n{input}\n\n", "{output}", 0.05),
    ("Task: {instruction}\n\n{input}\n\nAnswer:", "{output}", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n{input}\n\nAnswer:", "{output}", 0.05),
    ("{instruction}\n\nNow complete the following instance -\nInput: {input}\nOutput:", "{output}", 0.05),
    ("Instruction:{instruction}\n\nInput: {input}\n\n", "{output}", 0.05),
    ("Below is an instruction that describes a task, paired with an input that provides further context. "
     "Write a response that appropriately completes the request.\n\n"
     "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:", "{output}", 0.1),
)
#: Open-instruct's prompt templates for an instruction without an input ("Plase" is spelled so there).
WITHOUT_INPUT = (
    ("{instruction}\n\n", "{output}", 0.2),
    ("{instruction}\n", "{output}", 0.1),
    ("{instruction}", "\n{output}", 0.1),
    ("{instruction} Output:", "{output}", 0.05),
    ("{instruction}\nResponse:", "{output}", 0.05),
    ("{instruction}\n\nAnswer:", "{output}", 0.05),
    ("Task: {instruction}\n\n", "{output}", 0.05),
    ("Instruction: {instruction}\n", "{output}", 0.05),
    ("Instruction: {instruction}\nOutput:", "{output}", 0.05),
    ("You need to complete the following task:\n\n{instruction}\n\n", "{output}", 0.05),
    ("Can you help with this?\n\n{instruction}\n", "{output}", 0.05),
    ("Plase answer the following request: {instruction}\nAnswer:", "{output}", 0.05),
    ("Tell me how would you respond to the following request.\n{instruction}\n", "{output}", 0.05),
    ("Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
     "### Response:", "{output}", 0.1),
)


def _chat(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def instruction_example(instruction: str, input: str, output: str, rng) -> list[dict]:
    """Open-instruct's ``encode_instruction_example`` with random templates: one template drawn by
    weight (from :data:`WITH_INPUT` when the input is not blank, else :data:`WITHOUT_INPUT`) with the
    numpy generator ``rng``; instruction, input and output stripped. Returns [user, assistant]."""
    instruction, input, output = instruction.strip(), input.strip(), output.strip()
    templates = WITH_INPUT if input else WITHOUT_INPUT
    weights = [w for _, _, w in templates]
    prompt, completion, _ = templates[int(rng.choice(len(templates), p=[w / sum(weights) for w in weights]))]
    fields = {"instruction": instruction, "input": input, "output": output}
    return _chat(prompt.format(**fields), completion.format(**fields))


def few_shot_example(definition: str, examples: list[dict], input: str, output: str) -> list[dict]:
    """Open-instruct's ``encode_few_shot_example`` (part of SNI): the task definition, the positive
    ``examples`` (``input``, ``output``) as Input/Output blocks, then the instance's input."""
    shots = "".join(f"Input:\n{e['input'].strip()}\nOutput:\n{e['output'].strip()}\n\n" for e in examples)
    return _chat(f"{definition.strip()}\n\n{shots}Input:\n{input.strip()}\nOutput:\n", output.strip())


def inputs_targets_example(inputs: str, targets: str) -> list[dict]:
    """Open-instruct's conversion of a Flan record (cot, flan-v2): the user turn is ``inputs`` with a
    newline added unless it ends with one or with ':', the assistant turn ``targets``."""
    return _chat(inputs if inputs.endswith(("\n", ":")) else inputs + "\n", targets)


def _baize(record: dict) -> list[list[dict]]:
    turns = []
    for part in record["input"].split("[|Human|]")[1:]:
        pieces = part.split("[|AI|]")
        if len(pieces) == 2:
            turns += _chat(pieces[0].strip(), pieces[1].strip())
    return [turns] if turns else []


def _unnatural(record: dict, rng) -> list[list[dict]]:
    chats = []
    for instance in record["instances"]:
        constraints = str(instance.get("constraints") or "").strip()
        instruction = record["instruction"] + (f"\n{constraints}" if constraints.lower() not in ("", "none", "none.")
                                               else "")
        chats.append(instruction_example(instruction, instance["input"], instance["output"], rng))
    return chats


def _oasst_paths(node: dict, history: list[dict]) -> list[list[dict]]:
    """Every path from the root to each assistant message of an OASST1 message tree (June 2023 code)."""
    turn = {"role": "user" if node["role"] == "prompter" else "assistant", "content": node["text"]}
    path = history + [turn]
    found = [path] if turn["role"] == "assistant" else []
    for reply in node.get("replies", []):
        found += _oasst_paths(reply, path)
    return found


def _sharegpt_chunks(record: dict, n_tokens, max_length: int = 2048) -> list[tuple[int, list[dict]]]:
    """A ShareGPT conversation cut into chunks of whole (human, gpt) pairs of at most ``max_length``
    tokens, each turn counted as ``n_tokens(text) + 6`` (FastChat's splitter, as open-instruct ran it):
    a pair longer than ``max_length`` is dropped, an odd trailing turn too, and a conversation whose
    turns do not alternate human/gpt is dropped whole. Returns (first turn, messages) per chunk."""
    roles = {"human": "user", "user": "user", "gpt": "assistant", "chatgpt": "assistant"}
    turns = record["conversations"][: len(record["conversations"]) // 2 * 2]
    if [roles.get(t["from"]) for t in turns] != ["user", "assistant"] * (len(turns) // 2):
        return []
    chunks, start, current, length = [], 0, [], 0
    for i in range(0, len(turns), 2):
        pair = turns[i:i + 2]
        size = sum(n_tokens(t["value"]) + 6 for t in pair)
        if current and length + size > max_length:
            chunks.append((start, current))
            current, length = [], 0
        if size > max_length:
            continue
        if not current:
            start = i
        current = current + [{"role": roles[t["from"]], "content": t["value"]} for t in pair]
        length += size
    return chunks + ([(start, current)] if current else [])


def _sni(task: dict, rng) -> list[list[dict]]:
    instances = task["Instances"]
    if len(instances) > 80:
        instances = [instances[i] for i in sorted(rng.choice(len(instances), size=80, replace=False))]
    definition = task["Definition"][0]
    chats = [instruction_example(definition, inst["input"], inst["output"][0], rng) for inst in instances[:60]]
    for inst in instances[60:]:
        positive = task["Positive Examples"]
        shots = [positive[i] for i in rng.choice(len(positive), size=2, replace=False)]
        chats.append(few_shot_example(definition, shots, inst["input"], inst["output"][0]))
    return chats


def to_messages(name: str, records: list[dict], seed: int = 42, n_tokens=None) -> list[list[dict]]:
    """Open-instruct's conversion of ``name``'s raw records (as downloaded) into chats, in order.

    Records by dataset: stanford-alpaca, gpt4-alpaca ``instruction, input, output``; dolly
    ``instruction, context, response``; unnatural-instructions a core example (``instruction``,
    ``instances``); sni a task file (``Definition``, ``Positive Examples``, ``Instances``); cot, flan-v2
    ``inputs, targets``; oasst1 a message tree (``prompt``); sharegpt a conversation (``id``,
    ``conversations``; ``n_tokens`` counts a text's LLaMA tokens); baize ``input``. Random choices come
    from :func:`ifhelpers.data.sources.rng_for` (``seed``, ``name``). cot's 50,000-per-file sample is
    drawn by :func:`load` (it samples whole files)."""
    sources.choose("instruction dataset", name, SETS)
    rng = sources.rng_for(seed, "open-instruct", name)
    if name in ("stanford-alpaca", "gpt4-alpaca"):
        return [instruction_example(r["instruction"], r.get("input", ""), r["output"], rng) for r in records]
    if name == "dolly":
        return [instruction_example(r["instruction"], r.get("context", ""), r["response"], rng) for r in records]
    if name in ("cot", "flan-v2"):
        return [inputs_targets_example(r["inputs"], r["targets"]) for r in records]
    per_record = {"unnatural-instructions": lambda r: _unnatural(r, rng), "sni": lambda r: _sni(r, rng),
                  "oasst1": lambda r: _oasst_paths(r["prompt"], []), "baize": _baize,
                  "sharegpt": lambda r: [chat for _, chat in _sharegpt_chunks(r, n_tokens)]}[name]
    return [chat for record in records for chat in per_record(record)]


# --------------------------------------------------------------------------------------------------
# Reading: online (what open-instruct downloaded) or the mirror's subset or stand-in

_BEAKER = "https://beaker.org/api/v3/datasets"
_COT_FILES = {"cot_zsopt.jsonl": "01GXZ52K2Q932H6KZY499A7FE8", "cot_fsopt.jsonl": "01GXZ51ZV283RAZW7J3ECM4S58"}
_FLAN_V2 = ("01GZTTS2EJFPA83PXS4FQCS1SA", "flan_v2_resampled_100k.jsonl")
_COT_MIRROR = sources.GitHubFile("google-research/FLAN", "e9e4ec6e2701182c7a91af176f705310da541277",
                                 "flan/v2/cot_data")
_SHAREGPT = ("anon8231489123/ShareGPT_Vicuna_unfiltered",
             [f"HTML_cleaned_raw_dataset/sg_90k_part{i}_html_cleaned.json" for i in (1, 2)])


def _json_lines(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _github(repo: str, commit: str, path: str) -> Path:
    return sources.locate(path, None, sources.GitHubFile(repo, commit, path), what=f"{repo} {path}")


def _beaker(dataset: str, filename: str) -> Path:
    dest = sources.cache_root("beaker", dataset, filename)
    if not dest.is_file():
        with sources.cache_lock(dest, filename):
            if not dest.is_file():
                sources.download(f"{_BEAKER}/{dataset}/files/{filename}", dest, timeout=600)
    return dest


def _hub(repo: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo, filename, repo_type="dataset"))


def _online_records(name: str, seed: int) -> tuple[list[dict], object]:
    """The raw records open-instruct downloaded for ``name`` (and, for sharegpt, the token counter)."""
    if name == "stanford-alpaca":
        return json.loads(_github("tatsu-lab/stanford_alpaca", "main", "alpaca_data.json").read_text()), None
    if name == "gpt4-alpaca":
        path = _github("Instruction-Tuning-with-GPT-4/GPT-4-LLM", "main", "data/alpaca_gpt4_data.json")
        return json.loads(path.read_text()), None
    if name == "dolly":
        return _json_lines(_hub("databricks/databricks-dolly-15k", "databricks-dolly-15k.jsonl")), None
    if name == "oasst1":
        return _json_lines(_hub("OpenAssistant/oasst1", "2023-04-12_oasst_ready.trees.jsonl.gz")), None
    if name == "sharegpt":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained("oobabooga/llama-tokenizer")
        records = [r for f in _SHAREGPT[1] for r in json.loads(_hub(_SHAREGPT[0], f).read_text())]
        return records, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    if name == "baize":
        return [r for part in ("alpaca", "medical", "quora", "stackoverflow") for r in json.loads(
            _github("project-baize/baize-chatbot", "main", f"data/{part}_chat_data.json").read_text())], None
    if name == "unnatural-instructions":
        path = _github("orhonovich/unnatural-instructions", "main", "data/core_data.zip")
        with zipfile.ZipFile(path) as archive:
            text = archive.read(next(n for n in archive.namelist() if n.endswith("core_data.jsonl"))).decode()
        return [json.loads(line) for line in io.StringIO(text) if line.strip()], None
    if name == "sni":
        repo = ("allenai/natural-instructions", "master")
        tasks = _github(*repo, "splits/xlingual/train_tasks.txt").read_text().split()
        return [json.loads(_github(*repo, f"tasks/{t}.json").read_text()) for t in tasks if "_mmmlu_" not in t], None
    if name == "cot":
        rng = sources.rng_for(seed, "open-instruct", "cot-sample")
        records = []
        for filename, dataset in _COT_FILES.items():
            rows = _json_lines(_beaker(dataset, filename))
            records += [rows[i] for i in sorted(rng.choice(len(rows), size=min(50_000, len(rows)), replace=False))]
        return records, None
    return _json_lines(_beaker(*_FLAN_V2)), None  # flan-v2


def _cot_stand_in(root: Path) -> list[dict]:
    """The Flan v2 CoT source files (``question \\t answer \\t rationale``, newlines written as ``\\n``)
    as Flan records in one chain-of-thought layout of ours, not Flan's templates: the question, then
    "Let's think step by step."; the rationale, then "So the answer is <answer>."."""
    folder = root / SETS["cot"].offline_file
    files = sorted(folder.glob("*_train.tsv"))
    if not files:
        raise sources.DataNotFoundError(f"No Flan v2 CoT files (*_train.tsv) in {folder}.\n  what to do: point "
                                        f"{sources.ENV_DATA} at a complete copy of shared/data (SOURCES.md, row "
                                        f"instructions/flan_cot; online: {_COT_MIRROR.url}).")
    records = []
    for path in files:
        with open(path, encoding="utf-8", newline="") as fh:
            for question, answer, rationale in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                question, answer, rationale = (t.replace("\\n", "\n").strip() for t in (question, answer, rationale))
                records.append({"inputs": f"{question}\nLet's think step by step.",
                                "targets": f"{rationale}\nSo the answer is {answer}."})
    return records


def _lima_chats(path: Path) -> list[list[dict]]:
    """LIMA's conversations (earlier turns in ``history``) as chats."""
    chats = []
    for record in json.loads(path.read_text(encoding="utf-8")):
        turns = [turn for user, assistant in record.get("history") or [] for turn in _chat(user, assistant)]
        chats.append(turns + _chat(record["instruction"], record["output"]))
    return chats


def _offline_chats(name: str, root: Path, seed: int) -> tuple[list[list[dict]], list]:
    """The chats of the mirror's subset or stand-in, and the malformed rows as (file, [(line, why)])."""
    entry = SETS[name]
    if name == "stanford-alpaca":
        path = sources.locate(entry.offline_file, root, what=entry.label)
        records, bad = sources.read_jsonl(path, required=["instruction", "input", "output"])
        return to_messages(name, records, seed), [(path, bad)]
    if name == "flan-v2":
        t0 = instructions.load_t0(data_dir=root)
        records = [{"inputs": p, "targets": r} for p, r in zip(t0["prompt"], t0["response"])]
    elif name == "cot":
        records = _cot_stand_in(root)
    elif name in ("oasst1", "sharegpt"):
        return _lima_chats(sources.locate(entry.offline_file, root, what="LIMA (the chat stand-in)")), []
    else:  # gpt4-alpaca
        records = json.loads(sources.locate(entry.offline_file, root, what=entry.label).read_text(encoding="utf-8"))
    return to_messages(name, records, seed), []


def _refuse_offline(entry: InstructionSet, root: Path) -> OnlineOnlyError:
    stand_in = (f"the mirror offers a stand-in, load({entry.name!r}, stand_in=True): {entry.label}"
                if entry.offline_file else "the mirror offers no stand-in")
    return OnlineOnlyError(f"{entry.name} exists only online ({entry.online}) and the offline mirror {root} "
                           f"does not hold it: unset {sources.ENV_DATA} to download it; {stand_in}.")


def checked(frame: pd.DataFrame, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """``frame`` (a ``messages`` column) without the examples that have an empty turn (two of
    Stanford Alpaca's outputs are empty; counted in ``attrs["n_empty_turn"]``) or that contain evaluation
    data (:func:`ifhelpers.data.contamination.contamination`; ``attrs["n_contaminated"]`` by flag)."""
    empty = frame["messages"].map(lambda chat: any(not turn["content"].strip() for turn in chat))
    flagged = contamination(frame[~empty], data_dir=data_dir)
    clean = flagged.loc[~flagged["contaminated"], list(frame.columns)].reset_index(drop=True)
    clean.attrs.update(frame.attrs)
    clean.attrs.update(n_empty_turn=int(empty.sum()), n_contaminated={flag: int(flagged[flag].sum()) for flag in FLAGS})
    return clean


def load(name: str, data_dir: str | os.PathLike | None = None, *, seed: int = 42,
         stand_in: bool = False) -> pd.DataFrame:
    """The examples of one of the paper's instruction datasets as chats, without evaluation data.

    Online (no mirror set): the dataset open-instruct downloaded, converted as open-instruct did.
    With the mirror: its subset or stand-in (:data:`SETS`); a dataset that exists only online raises
    :class:`OnlineOnlyError` unless ``stand_in`` asks for the mirror's stand-in (LIMA for oasst1 and
    sharegpt). Columns ``dataset, id, messages, source``; ``source`` (also ``attrs["source"]``) is the
    label of what was loaded. The examples that :func:`checked` drops are counted in ``attrs``.
    """
    entry = SETS[sources.choose("instruction dataset", name, SETS)]
    root = sources.mirror_root(data_dir)
    malformed = []
    if root is None:
        records, n_tokens = _online_records(name, seed)
        chats, label = to_messages(name, records, seed, n_tokens), f"{name} ({entry.online})"
    elif entry.offline == "online only" and not (stand_in and entry.offline_file):
        raise _refuse_offline(entry, root)
    else:
        (chats, malformed), label = _offline_chats(name, root, seed), entry.label
    frame = pd.DataFrame({"dataset": name, "id": [f"{name}_{i}" for i in range(len(chats))], "messages": chats,
                          "source": label})
    frame.attrs["source"] = label
    for path, bad in malformed:
        sources.note_malformed(frame, bad, label, path)
    return checked(frame, data_dir)
