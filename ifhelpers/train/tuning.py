"""Instruction-tune a base model yourself: one recipe for chapter 5's mixtures and the paper's datasets.

The paper compares models that others trained; its introduction *posits* that instruction data
make models consistent because they verbalise one task in many surface forms. The tune-it-yourself
chapter tests that with one base model and training arms of the same size and the same tasks,
trained with the same steps and hyper-parameters (:class:`Recipe`), each with several seeds:

* ``templates-<k>``  -- every T0 task through k of its templates, drawn with the seed (round robin);
* ``templates-all``  -- every T0 task through all of its eligible templates;
* ``free-form``      -- LIMA and Alpaca, which have no templates at all.

The same recipe trains the paper's design at pocket scale: a mixture may also name one of the
paper's instruction datasets (:data:`ifhelpers.data.instruction_sets.SETS`, as open-instruct turned
it into chat messages; offline, the mirror's subset or labelled stand-in). Every dataset gets the
same number of examples (``n_examples``, drawn with the seed from the chats that fit), hence the same
number of steps, and the same settings.

**One chat format**: the base model's chat template, Gemma's turn format (:data:`GEMMA_CHAT_TEMPLATE`)
for gemma-3-270m, whose GGUF ships none, rather than open-instruct's ``<|user|>``/``<|assistant|>``
tags. Gemma's turn markers are single tokens of its vocabulary, made for this; chapter 5's arms are
trained and prompted with them, so every tuned model of the book answers in one format and the
chapters prompt all of them the same way (the ``chat-template`` prompt format). Open-instruct's tags
would be several ordinary tokens each and a second format beside chapter 5's.

**The loss is on the assistant turns only**, as in open-instruct: a chat is tokenized turn by turn
(:func:`chat_tokens`); every assistant turn's tokens (its content and its end of turn) are targets,
every user turn and turn header is context without loss. A chat longer than ``max_tokens`` is cut at
the end (a T0 example that does not fit is dropped instead, as cutting a templated prompt would cut
its question); a chat is kept only if its first answer starts more than 8 tokens before the cut.

Evaluation data never enter the mix (:func:`ifhelpers.data.contamination.contamination`): an
example is dropped when it states a ParaRel fact (subject and object both in it), or shares a word
8-gram with an MMLU test question or with any BECEL input; every instruction dataset goes through
it when it is loaded (:func:`ifhelpers.data.instruction_sets.load`).

Training (:func:`fit`) is LoRA through ``peft`` (or, with ``method="full"``, every weight) with the
``transformers`` Trainer: seeded, with a progress bar and checkpoints that a restarted run resumes
from. The language-model head runs on the scored positions only (``logits_to_keep``), which matters
for Gemma's 262,144-token vocabulary. What training changed, the LoRA adapter, is stored with the chat
template under ``<cache>/models/<name>-<recipe hash>`` (megabytes; loading rebuilds base + adapter,
:func:`ifhelpers.model.models.load`); a registry entry with ``source: {kind: lora_tuned, ...}`` names
such a model (:mod:`ifhelpers.model.tuned` finds it), and :func:`ensure_tuned` trains it when it is
not stored yet. Full fine-tuning is measured beside LoRA (``benchmarks/lora_vs_full.py``), not stored:
LoRA is the book's method because, on gemma-3-270m with 32-64 chats of one dataset on a CPU, it reached
the same held-out loss as full fine-tuning at open-instruct's rate (2e-5) with a lower peak memory
(5.8 against 8.1 GiB) and an adapter of 15 MB instead of a 1.1 GB copy; its speed on 2 shared cores was
not distinguishable from full fine-tuning's (the run's printed table gives the figures).
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ifhelpers.data import instruction_sets, instructions, sources
from ifhelpers.data.contamination import contamination
from ifhelpers.model import anatomy, registry
from ifhelpers.model.registry import ModelSpec
from ifhelpers.model.tuned import (CHAT_TEMPLATE, Recipe, check_data, check_mixture, data_label, folders, is_stored,
                                   is_trained, location, recipe_of, templates_per_task)

__all__ = ["GEMMA_CHAT_TEMPLATE", "base_tokenizer", "chat_tokens", "candidate_pool", "dataset_pool",
           "eligible_templates", "mixture", "templates_dose", "mixture_summary", "base_model", "fit", "target_loss",
           "train", "store", "ensure_tuned"]

#: Gemma's turn format (``<start_of_turn>user ... <end_of_turn>``), as a chat template. The GGUF of
#: the pocket base model ships no template; the tuned models are trained and prompted with this one.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
#: A chat is kept only when its first assistant turn starts more than this many tokens before
#: ``max_tokens`` (so a cut answer keeps more than 8 tokens).
ANSWER_ROOM = 8


def base_tokenizer(base: str):
    """The tokenizer of a base model, with a chat template (Gemma's turn format when it ships none)."""
    from transformers import AutoTokenizer

    from ifhelpers.model.models import weights_location

    tokenizer = AutoTokenizer.from_pretrained(weights_location(registry.resolve(base, role="base"))[0])
    tokenizer.chat_template = tokenizer.chat_template or GEMMA_CHAT_TEMPLATE
    return tokenizer



# --------------------------------------------------------------------------------------------------
# The three mixtures


def chat_tokens(tokenizer, messages: list[dict]) -> tuple[list[int], list[bool]]:
    """A chat's token ids in the tokenizer's chat template, and which of them are targets.

    The chat is rendered turn by turn: each turn adds the text between the rendering of the turns
    before it and the rendering up to it (a user turn with the header of the answer that follows,
    the generation prompt), tokenized on its own. An assistant turn's tokens are targets; the rest is
    context. A template whose rendering of a longer chat does not extend the shorter one's is refused."""
    ids, targets, done = [], [], ""
    for i, turn in enumerate(messages):
        text = tokenizer.apply_chat_template(messages[:i + 1], tokenize=False,
                                             add_generation_prompt=turn["role"] == "user")
        if not text.startswith(done):
            raise ValueError("This chat template renders a chat differently from its first turns, so the turns "
                             "cannot be told apart: give the tokenizer a turn-by-turn template such as "
                             "ifhelpers.train.tuning.GEMMA_CHAT_TEMPLATE.")
        piece = tokenizer(text[len(done):], add_special_tokens=False)["input_ids"]
        ids += piece
        targets += [turn["role"] == "assistant"] * len(piece)
        done = text
    return ids, targets


def _chat(prompt: str, response: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def _fitting_length(targets: list[bool], max_tokens: int) -> int | None:
    """The length a chat is cut to (``max_tokens`` at most), or None when its first target token is
    not more than :data:`ANSWER_ROOM` tokens before ``max_tokens``."""
    return min(len(targets), max_tokens) if targets.index(True) < max_tokens - ANSWER_ROOM else None


def candidate_pool(tokenizer, max_tokens: int, data_dir=None) -> pd.DataFrame:
    """Every T0 and free-form example that fits ``max_tokens`` in the chat format, with the check.

    T0 examples longer than ``max_tokens`` are dropped (cutting a templated prompt would cut its
    question); free-form responses are cut to fit, as their prompts are short and their answers long.
    Columns: those of :mod:`ifhelpers.data.instructions`, ``n_tokens`` and the flags of
    :func:`ifhelpers.data.contamination.contamination`.
    """
    t0 = instructions.load_t0(data_dir=data_dir)
    free = instructions.load_freeform(data_dir=data_dir).assign(task="free-form", template="free-form")
    frames = []
    for frame, cut in ((t0, False), (free, True)):
        lengths = []
        for prompt, response in zip(frame["prompt"], frame["response"]):
            ids, targets = chat_tokens(tokenizer, _chat(prompt, response))
            lengths.append(_fitting_length(targets, max_tokens) if cut else
                           (len(ids) if len(ids) <= max_tokens else None))
        fits = np.array([n is not None for n in lengths])
        frames.append(frame.assign(n_tokens=lengths)[fits].astype({"n_tokens": int}))
    pool = pd.concat(frames, ignore_index=True)
    return contamination(pool, data_dir=data_dir)


def dataset_pool(tokenizer, name: str, max_tokens: int, data_dir=None) -> pd.DataFrame:
    """The chats of one of the paper's instruction datasets that fit ``max_tokens`` (cut at the end;
    the first answer must start more than :data:`ANSWER_ROOM` tokens before it), without evaluation data.

    :func:`ifhelpers.data.instruction_sets.load` gives the chats after the contamination check
    (offline: the mirror's subset or labelled stand-in; its counts stay in ``attrs``). Columns: those
    of ``load``, ``task`` and ``template`` (the dataset's name), ``n_tokens`` and ``contaminated``
    (all False), so that :func:`mixture` draws from it like from :func:`candidate_pool`."""
    chats = instruction_sets.load(name, data_dir)
    lengths = [_fitting_length(chat_tokens(tokenizer, chat)[1], max_tokens) for chat in chats["messages"]]
    fits = np.array([n is not None for n in lengths])
    pool = chats.assign(task=name, template=name, n_tokens=lengths, contaminated=False)[fits]
    pool = pool.astype({"n_tokens": int}).reset_index(drop=True)
    pool.attrs.update(chats.attrs, n_too_long=int((~fits).sum()))
    return pool


def eligible_templates(pool: pd.DataFrame, n_examples: int, min_templates: int = 4) -> tuple[dict[str, list[str]], int]:
    """The T0 tasks every arm trains on, with their eligible templates, and the examples per task.

    A template is eligible when it has at least ``per_task`` clean examples that fit (so that any
    choice of templates can fill a task's share); a task takes part when it has ``min_templates``
    eligible templates, so that every arm up to ``templates-<min_templates>`` uses the same tasks.
    ``per_task = n_examples // n_tasks``: tasks that drop out raise the share, until it is stable.
    Returns ({task: sorted eligible templates}, per_task)."""
    clean = pool[~pool["contaminated"] & (pool["task"] != "free-form")]
    counts = clean.groupby(["task", "template"]).size()
    usable = sorted(counts.index.get_level_values("task").unique())
    while True:
        per_task = n_examples // max(1, len(usable))
        if per_task < 1:
            raise ValueError(f"n_examples={n_examples} is smaller than the number of T0 tasks ({len(usable)}): "
                             f"give at least {len(usable)}, one example per task.")
        eligible = {task: sorted(t for t, c in counts[task].items() if c >= per_task) for task in usable}
        fitting = [task for task in usable if len(eligible[task]) >= min_templates]
        if not fitting:
            raise ValueError(f"{n_examples} examples need {per_task} per task, and no T0 task has {min_templates} "
                             f"templates with that many clean examples that fit: lower n_examples or min_templates, "
                             f"or raise max_tokens.")
        if fitting == usable:
            return {task: eligible[task] for task in usable}, per_task
        usable = fitting


def mixture(pool: pd.DataFrame, kind: str, n_examples: int, seed: int = 0, min_templates: int = 4) -> pd.DataFrame:
    """The training examples of one arm, drawn from the clean part of :func:`candidate_pool`.

    Every T0 arm uses the tasks of :func:`eligible_templates` with ``per_task`` examples each. Arm
    ``templates-<k>`` draws k of a task's eligible templates at random (with ``seed``: the choice of
    templates is part of the seed) and takes its examples round robin over them, each template's
    examples shuffled; ``templates-all`` uses every eligible template. ``free-form`` draws the same
    total from LIMA and Alpaca. An instruction dataset (``pool`` from :func:`dataset_pool`) gives
    ``n_examples`` of its chats. Column ``mixture`` names the arm.
    """
    check_mixture(kind, min_templates)
    if kind in instruction_sets.SETS:
        chats = pool[(pool["task"] == kind) & ~pool["contaminated"]]
        if len(chats) < n_examples:
            raise ValueError(f"Only {len(chats)} clean chats of {kind} fit; asked for {n_examples}: lower n_examples "
                             f"or raise max_tokens.")
        return chats.sample(n_examples, random_state=seed).assign(mixture=kind)
    tasks, per_task = eligible_templates(pool, n_examples, min_templates)
    clean = pool[~pool["contaminated"]]
    if kind == "free-form":
        free = clean[clean["task"] == "free-form"]
        total = per_task * len(tasks)
        if len(free) < total:
            raise ValueError(f"Only {len(free)} clean free-form examples fit; asked for {total}.")
        return free.sample(total, random_state=seed).assign(mixture=kind)
    k = templates_per_task(kind)
    t0 = clean[clean["task"] != "free-form"]
    picked = []
    for task, templates in tasks.items():
        rng = sources.rng_for(seed, "tune", task)
        chosen = templates if k is None else sorted(rng.choice(templates, size=k, replace=False))
        queues = {t: list(t0.index[t0["template"] == t][rng.permutation(int((t0["template"] == t).sum()))])
                  for t in chosen}
        order = []
        while len(order) < per_task:  # round robin over the chosen templates
            for template in chosen:
                if len(order) < per_task:
                    order.append(queues[template].pop())
        picked.append(t0.loc[order])
    return pd.concat(picked).assign(mixture=kind)


def templates_dose(frame: pd.DataFrame) -> float:
    """The dose of one drawn arm: its mean number of distinct templates per T0 task."""
    return float(frame.groupby("task")["template"].nunique().mean())


def mixture_summary(mixtures: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per mixture: examples, tasks, templates per task, tokens (what the variants share and what differs)."""
    rows = []
    for kind, frame in mixtures.items():
        per_task = frame.groupby("task")["template"].nunique()
        rows.append({"mixture": kind, "examples": len(frame), "tasks": frame["task"].nunique(),
                     "templates_per_task": per_task.mean(), "tokens": int(frame["n_tokens"].sum()),
                     "tokens_per_example": frame["n_tokens"].mean()})
    return pd.DataFrame(rows).set_index("mixture")


# --------------------------------------------------------------------------------------------------
# Training


def _collate(tokenizer):
    """Left-pad a batch; labels only on the target tokens; the LM head only on the last positions."""
    import torch

    def collate(examples):
        width = max(len(e["input_ids"]) for e in examples)
        keep = max(e["n_scored"] for e in examples) + 1  # + the position before the first target, which predicts it
        ids = torch.full((len(examples), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), -100)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, width - n:] = torch.tensor(e["input_ids"])
            mask[row, width - n:] = 1
            labels[row, width - n:] = torch.tensor(e["labels"])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                "labels": labels[:, width - keep:], "logits_to_keep": keep}

    return collate


def _encode(tokenizer, frame: pd.DataFrame, max_tokens: int) -> list[dict]:
    """Each example (a ``messages`` chat, or ``prompt`` and ``response``) as token ids cut to
    ``max_tokens``, labels (the token on targets, -100 on context) and ``n_scored``: the positions from
    the first target to the end."""
    chats = (frame["messages"] if "messages" in frame
             else [_chat(p, r) for p, r in zip(frame["prompt"], frame["response"])])
    encoded = []
    for chat in chats:
        ids, targets = chat_tokens(tokenizer, chat)
        ids, targets = ids[:max_tokens], targets[:max_tokens]
        encoded.append({"input_ids": ids, "labels": [t if s else -100 for t, s in zip(ids, targets)],
                        "n_scored": len(ids) - targets.index(True)})
    return encoded


def target_loss(model, tokenizer, chats: pd.DataFrame, max_tokens: int, batch_size: int) -> float:
    """The mean loss per target token (the assistant turns) of ``chats`` under ``model``, encoded and
    batched as in training (e.g. on held-out chats of a dataset, before and after tuning)."""
    import torch

    collate = _collate(tokenizer)
    encoded = _encode(tokenizer, chats, max_tokens)
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = {key: (value.to(model.device) if torch.is_tensor(value) else value)
                     for key, value in collate(encoded[start:start + batch_size]).items()}
            n = int((batch["labels"][:, 1:] != -100).sum())  # the model shifts: position t predicts label t + 1
            total += float(model(**batch).loss) * n
            count += n
    return total / count


def _reset_peak_memory() -> None:
    """Start a new peak-resident-size window for this process (Linux: writing 5 to clear_refs resets
    VmHWM), so that every arm trained in one process reports its own peak; elsewhere a no-op."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_memory_gib() -> float:
    """The peak resident size since :func:`_reset_peak_memory` (VmHWM), or of the process (ru_maxrss)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def last_whole_checkpoint(work_dir: str | Path) -> str | None:
    """The Trainer's last checkpoint in ``work_dir`` that reads back whole (a ``trainer_state.json``, and every
    file whole by :func:`ifhelpers.model.cache.file_problem`), or None. A damaged one is said on one line and
    removed (:func:`ifhelpers.data.sources.discard`): training resumes from the one before, or starts again."""
    from transformers.trainer_utils import get_last_checkpoint

    from ifhelpers.model.cache import file_problem

    while Path(work_dir).is_dir() and (last := get_last_checkpoint(str(work_dir))) is not None:
        files = sorted(p for p in Path(last).iterdir() if p.is_file())
        problem = ("no trainer_state.json" if not (Path(last) / "trainer_state.json").is_file()
                   else next(filter(None, map(file_problem, files)), None))
        if problem is None:
            return last
        sources.discard(Path(last), problem, "training checkpoint")
    return None


def fit(model, tokenizer, examples: pd.DataFrame, recipe: Recipe, work_dir: str | Path, *,
        progress: bool = True, callbacks=(), checkpoints: bool = True) -> tuple[object, dict]:
    """Train ``model`` on ``examples`` as ``recipe`` says, with the Trainer; returns (model, training log).

    ``recipe.method == "lora"``: the model comes back as a peft model, ``model`` with the trained
    adapter beside its weights (its ``save_pretrained`` stores the adapter alone, its
    ``merge_and_unload`` folds it into the weights). ``"full"``: every weight is trained and ``model``
    comes back changed. With ``checkpoints``, a checkpoint every fifth of the run, and a run resumes from
    the last one in ``work_dir``; without, none is written (a measurement of training alone).
    """
    import torch
    from transformers import Trainer, TrainingArguments, set_seed

    set_seed(recipe.seed)
    if recipe.method == "lora":
        from peft import LoraConfig, get_peft_model

        targets = anatomy.lora_targets(model, recipe.target_modules, recipe.name)
        lora = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    steps = recipe.epochs * -(-len(examples) // recipe.batch_size)
    on_cpu = model.device.type == "cpu"
    args = TrainingArguments(
        output_dir=str(work_dir), max_steps=steps, per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate, lr_scheduler_type="linear", warmup_steps=max(1, steps // 10),
        weight_decay=0.0, logging_steps=max(1, steps // 20), save_steps=max(1, steps // 5), save_total_limit=1,
        save_strategy="steps" if checkpoints else "no",
        seed=recipe.seed, data_seed=recipe.seed, use_cpu=on_cpu, bf16=not on_cpu,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        report_to=[], remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not progress,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_encode(tokenizer, examples, recipe.max_tokens),
                      data_collator=_collate(tokenizer), callbacks=list(callbacks))
    last = last_whole_checkpoint(work_dir) if checkpoints else None
    _reset_peak_memory()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start
    tokens = int(examples["n_tokens"].sum())
    log = {
        "method": recipe.method, "steps": steps, "examples": len(examples), "tokens": tokens,
        "seconds": seconds, "tokens_per_second": recipe.epochs * tokens / seconds, "resumed_from": last,
        "train_runtime": result.metrics.get("train_runtime"),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "peak_rss_gib": _peak_memory_gib(),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(), "device": str(model.device),
        "losses": [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e],
        "examples_by_task": examples["task"].value_counts().to_dict(),
        "examples_by_template": examples["template"].value_counts().to_dict(),
    }
    if recipe.method == "lora" and targets != list(recipe.target_modules):  # the family's names for them
        log["lora_modules"] = targets
    model.eval()
    return model, log


def train(recipe: Recipe, pool: pd.DataFrame | None = None, *, progress: bool = True, data_dir=None) -> Path:
    """Train ``recipe`` (or resume it) on its base model and store its adapter; returns its folder.

    A finished model is never trained again; an interrupted one resumes from its last checkpoint
    (kept in ``<cache>/tuning/``, removed once the adapter is stored). ``pool`` is
    :func:`candidate_pool`'s result, computed here when not given. Two processes that need the same
    model train it once: the second waits for the first (a lock on the model's folder).
    """
    if recipe.method != "lora":
        raise ValueError(f"{recipe.name}: the book stores tuned models as LoRA adapters (megabytes); a "
                         f"method={recipe.method!r} recipe is trained with ifhelpers.train.tuning.fit (as "
                         f"benchmarks/lora_vs_full.py does), not stored: use method='lora'.")
    work, target = folders(recipe)
    if is_stored(recipe):
        return target
    check_data(recipe, data_dir)
    with sources.cache_lock(target, f"the tuned model {recipe.name}"):
        if is_stored(recipe):  # another process trained it while this one waited
            return target
        return _train_and_store(recipe, pool, work, target, progress, data_dir)


def base_model(base: str):
    """(model, fingerprint of its weights): the base model to train, on the default device, in fp32 on a
    CPU and bf16 on a GPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from ifhelpers.model.models import default_device, weights_location

    location, fingerprint = weights_location(registry.resolve(base, role="base"))
    device = default_device()
    model = AutoModelForCausalLM.from_pretrained(location, use_safetensors=True,
                                                 dtype=torch.float32 if device == "cpu" else torch.bfloat16)
    return model.to(device), fingerprint


def _train_and_store(recipe: Recipe, pool, work: Path, target: Path, progress: bool, data_dir) -> Path:
    tokenizer = base_tokenizer(recipe.base)
    if pool is None:
        pool = (dataset_pool(tokenizer, recipe.mixture, recipe.max_tokens, data_dir)
                if recipe.mixture in instruction_sets.SETS else candidate_pool(tokenizer, recipe.max_tokens, data_dir))
    examples = mixture(pool, recipe.mixture, recipe.n_examples, recipe.seed, recipe.min_templates)
    model, fingerprint = base_model(recipe.base)
    tuned, log = fit(model, tokenizer, examples, recipe, work, progress=progress)
    log["data"] = {key: pool.attrs[key] for key in ("source", "n_empty_turn", "n_contaminated", "n_too_long")
                   if key in pool.attrs}
    store(tuned, tokenizer, target, {"recipe": dataclasses.asdict(recipe), "recipe_key": recipe.key,
                                     "base": fingerprint, "training": log})
    shutil.rmtree(work, ignore_errors=True)  # checkpoints are only for resuming
    return target


def store(tuned, tokenizer, target: Path, provenance: dict) -> None:
    """Store what tuning changed under ``target``: the adapter of the peft model ``tuned``, the chat
    template of ``tokenizer`` (the base's tokenizer is not copied) and the provenance, which must give
    the base model's fingerprint (``base``): the adapter is a change to those weights."""
    from ifhelpers.model.models import save_atomically

    save_atomically(tuned, None, target, provenance, files={CHAT_TEMPLATE: tokenizer.chat_template})


def ensure_tuned(spec: ModelSpec) -> tuple[str, str]:
    """(folder, fingerprint) of a ``lora_tuned`` model, training it first when it is not stored yet."""
    recipe = recipe_of(spec)
    if not is_trained(spec):
        print(f"{spec.name} is not trained yet on this machine: training it now on "
              f"{data_label(recipe.mixture, recipe.data)} ("
              f"{recipe.n_examples} examples; 2-5 minutes at the default size on 2 CPU cores). It is stored in "
              f"{folders(recipe)[1]}.")
        train(recipe)
    return location(spec)
