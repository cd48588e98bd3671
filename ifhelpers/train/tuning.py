"""Instruction-tune a base model yourself: controlled training mixtures, a contamination check, LoRA.

The paper compares models that others trained; its introduction *posits* that instruction data
make models consistent because they verbalise one task in many surface forms. The tune-it-yourself
chapter tests that with one base model and training arms of the same size and the same tasks,
trained with the same steps and hyper-parameters (:class:`Recipe`), each with several seeds:

* ``templates-<k>``  -- every T0 task through k of its templates, drawn with the seed (round robin);
* ``templates-all``  -- every T0 task through all of its eligible templates;
* ``free-form``      -- LIMA and Alpaca, which have no templates at all.

Evaluation data never enter the mix (:func:`ifhelpers.data.contamination.contamination`): an
example is dropped when it states a ParaRel fact (subject and object both in it), or shares a word
8-gram with an MMLU test question or with any BECEL input.

Training (:func:`train`) is LoRA through ``peft`` with the ``transformers`` Trainer: seeded,
with a progress bar, checkpoints that a restarted run resumes from, and the loss on the response
tokens only. The language-model head runs on the response positions only (``logits_to_keep``),
which matters for Gemma's 262,144-token vocabulary. What training changed, the LoRA adapter, is
stored with the chat template under ``<cache>/models/<name>-<recipe hash>`` (megabytes; loading
rebuilds base + adapter, :func:`ifhelpers.model.models.load`); a registry
entry with ``source: {kind: lora_tuned, ...}`` names such a model (:mod:`ifhelpers.model.tuned` finds it),
and :func:`ensure_tuned` trains it when it is not stored yet.
"""

from __future__ import annotations

import dataclasses
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ifhelpers.data import instructions, sources
from ifhelpers.data.contamination import contamination
from ifhelpers.model import registry
from ifhelpers.model.registry import ModelSpec
from ifhelpers.model.tuned import (ADAPTER_CONFIG, CHAT_TEMPLATE, Recipe, check_mixture, folders, is_trained, location,
                                   recipe_of, templates_per_task)

__all__ = ["GEMMA_CHAT_TEMPLATE", "base_tokenizer", "candidate_pool", "eligible_templates",
           "mixture", "templates_dose", "mixture_summary", "fit_lora", "train", "store", "ensure_tuned"]

#: Gemma's turn format (``<start_of_turn>user ... <end_of_turn>``), as a chat template. The GGUF of
#: the pocket base model ships no template; the tuned models are trained and prompted with this one.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_END_OF_TURN = "<end_of_turn>\n"



def base_tokenizer(base: str):
    """The tokenizer of a base model, with a chat template (Gemma's turn format when it ships none)."""
    from transformers import AutoTokenizer

    from ifhelpers.model.models import weights_location

    tokenizer = AutoTokenizer.from_pretrained(weights_location(registry.resolve(base, role="base"))[0])
    tokenizer.chat_template = tokenizer.chat_template or GEMMA_CHAT_TEMPLATE
    return tokenizer



# --------------------------------------------------------------------------------------------------
# The three mixtures


def _chat_parts(tokenizer, prompt: str, response: str) -> tuple[list[int], list[int]]:
    head = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
    prompt_ids = tokenizer(head, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response.strip() + _END_OF_TURN, add_special_tokens=False)["input_ids"]
    return prompt_ids, response_ids


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
        lengths, fits = [], []
        for prompt, response in zip(frame["prompt"], frame["response"]):
            p, r = _chat_parts(tokenizer, prompt, response)
            n = len(p) + (min(len(r), max_tokens - len(p)) if cut else len(r))
            lengths.append(n)
            fits.append(n <= max_tokens and (not cut or len(p) < max_tokens - 8))  # a cut answer keeps 8 tokens
        frames.append(frame.assign(n_tokens=lengths)[np.asarray(fits)])
    pool = pd.concat(frames, ignore_index=True)
    return contamination(pool, data_dir=data_dir)


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
    total from LIMA and Alpaca. Column ``mixture`` names the arm.
    """
    check_mixture(kind, min_templates)
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
                     "templates per task": per_task.mean(), "tokens": int(frame["n_tokens"].sum()),
                     "tokens per example": frame["n_tokens"].mean()})
    return pd.DataFrame(rows).set_index("mixture")


# --------------------------------------------------------------------------------------------------
# Training


def _collate(tokenizer):
    """Left-pad a batch; labels only on the response; the LM head only on the last positions."""
    import torch

    def collate(examples):
        width = max(len(e["input_ids"]) for e in examples)
        keep = max(e["n_response"] for e in examples) + 1  # + the prompt's last position, which predicts token 1
        ids = torch.full((len(examples), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(examples), width), dtype=torch.long)
        labels = torch.full((len(examples), width), -100)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            ids[row, width - n:] = torch.tensor(e["input_ids"])
            mask[row, width - n:] = 1
            labels[row, width - e["n_response"]:] = torch.tensor(e["input_ids"][-e["n_response"]:])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                "labels": labels[:, width - keep:], "logits_to_keep": keep}

    return collate


def _encode(tokenizer, frame: pd.DataFrame, max_tokens: int) -> list[dict]:
    encoded = []
    for prompt, response in zip(frame["prompt"], frame["response"]):
        p, r = _chat_parts(tokenizer, prompt, response)
        r = r[:max_tokens - len(p)]
        encoded.append({"input_ids": p + r, "n_response": len(r)})
    return encoded


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


def fit_lora(model, tokenizer, examples: pd.DataFrame, recipe: Recipe, work_dir: str | Path, *,
             progress: bool = True, callbacks=()) -> tuple[object, dict]:
    """LoRA-train ``model`` on ``examples`` with the Trainer; returns (peft model, training log).

    Resumes from the last checkpoint in ``work_dir`` when there is one (checkpoints every fifth of
    the run). The peft model is ``model`` with the trained adapter beside its weights: its
    ``save_pretrained`` stores the adapter alone, its ``merge_and_unload`` folds it into the weights.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    set_seed(recipe.seed)
    lora = LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha, lora_dropout=recipe.lora_dropout,
                      target_modules=list(recipe.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    steps = recipe.epochs * -(-len(examples) // recipe.batch_size)
    on_cpu = model.device.type == "cpu"
    args = TrainingArguments(
        output_dir=str(work_dir), max_steps=steps, per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate, lr_scheduler_type="linear", warmup_steps=max(1, steps // 10),
        weight_decay=0.0, logging_steps=max(1, steps // 20), save_steps=max(1, steps // 5), save_total_limit=1,
        seed=recipe.seed, data_seed=recipe.seed, use_cpu=on_cpu, bf16=not on_cpu,
        train_sampling_strategy="group_by_length",  # batches of similar length: little padding
        report_to=[], remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not progress,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_encode(tokenizer, examples, recipe.max_tokens),
                      data_collator=_collate(tokenizer), callbacks=list(callbacks))
    last = get_last_checkpoint(str(work_dir)) if Path(work_dir).is_dir() else None
    _reset_peak_memory()
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    log = {
        "steps": steps, "examples": len(examples), "tokens": int(examples["n_tokens"].sum()),
        "seconds": time.perf_counter() - start, "resumed_from": last,
        "train_runtime": result.metrics.get("train_runtime"),
        "peak_rss_gib": _peak_memory_gib(),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(), "device": str(model.device),
        "losses": [{"step": e["step"], "loss": e["loss"]} for e in trainer.state.log_history if "loss" in e],
        "examples_by_task": examples["task"].value_counts().to_dict(),
        "examples_by_template": examples["template"].value_counts().to_dict(),
    }
    model.eval()
    return model, log


def train(recipe: Recipe, pool: pd.DataFrame | None = None, *, progress: bool = True, data_dir=None) -> Path:
    """Train ``recipe`` (or resume it) on its base model and store its adapter; returns its folder.

    A finished model is never trained again; an interrupted one resumes from its last checkpoint
    (kept in ``<cache>/tuning/``, removed once the adapter is stored). ``pool`` is
    :func:`candidate_pool`'s result, computed here when not given. Two processes that need the same
    model train it once: the second waits for the first (a lock on the model's folder).
    """
    work, target = folders(recipe)
    if (target / ADAPTER_CONFIG).exists():
        return target
    with sources.cache_lock(target, f"the tuned model {recipe.name}"):
        if (target / ADAPTER_CONFIG).exists():  # another process trained it while this one waited
            return target
        return _train_and_store(recipe, pool, work, target, progress, data_dir)


def _train_and_store(recipe: Recipe, pool, work: Path, target: Path, progress: bool, data_dir) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    from ifhelpers.model.models import default_device, weights_location

    location, fingerprint = weights_location(registry.resolve(recipe.base, role="base"))
    tokenizer = base_tokenizer(recipe.base)
    pool = candidate_pool(tokenizer, recipe.max_tokens, data_dir) if pool is None else pool
    examples = mixture(pool, recipe.mixture, recipe.n_examples, recipe.seed, recipe.min_templates)
    device = default_device()
    model = AutoModelForCausalLM.from_pretrained(location, use_safetensors=True,
                                                 dtype=torch.float32 if device == "cpu" else torch.bfloat16).to(device)
    tuned, log = fit_lora(model, tokenizer, examples, recipe, work, progress=progress)
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
        print(f"{spec.name} is not trained yet on this machine: training it now ({recipe.mixture} mixture, "
              f"{recipe.n_examples} examples; 2-5 minutes at the default size on 2 CPU cores). It is stored in "
              f"{folders(recipe)[1]}.")
        train(recipe)
    return location(spec)
