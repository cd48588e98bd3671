"""The tune-it-yourself machinery: instruction data, the contamination check, mixtures, LoRA training."""

from __future__ import annotations

import dataclasses
import os

import pandas as pd
import pytest

import ifhelpers as ifh
from ifhelpers.model import tuned
from ifhelpers.train import tuning

from conftest import make_tiny_llama, make_tiny_tokenizer, save_tiny_family


# ---------------------------------------------------------------------------------------- data


def test_t0_rows_know_their_task_and_template():
    t0 = ifh.data.instructions.load_t0()
    assert len(t0) > 30_000 and t0["task"].nunique() >= 25
    assert (t0.groupby("task")["template"].nunique() >= 2).all()  # every task has paraphrased templates
    assert not t0["response"].str.contains("<|endoftext|>", regex=False).any()
    assert all(t.startswith(task) for task, t in zip(t0["task"], t0["template"]))
    assert not set(t0["task"]) & {"glue_mrpc", "paws", "qqp"}  # removed upstream: BECEL's paraphrase task


def test_unknown_t0_task_lists_the_valid_ones():
    with pytest.raises(ifh.data.sources.DataSelectionError, match="imdb"):
        ifh.data.instructions.load_t0(tasks=["imbd"])


def test_freeform_is_single_turn_lima_and_alpaca():
    free = ifh.data.instructions.load_freeform()
    assert set(free["source"]) == {"lima", "alpaca"}
    assert free["prompt"].str.len().gt(0).all() and free["response"].str.len().gt(0).all()


def test_missing_mirror_file_says_where_it_looked(tmp_path):
    (tmp_path / "instructions" / "t0").mkdir(parents=True)
    with pytest.raises(ifh.data.sources.DataNotFoundError, match=str(tmp_path)):
        ifh.data.instructions.load_t0(data_dir=tmp_path)


# ---------------------------------------------------------------------------- contamination


def test_contamination_flags_each_kind_of_evaluation_data():
    fact = ifh.data.pararel.load_facts("P36").iloc[0]
    question = ifh.data.mmlu.load_mmlu(split="test").iloc[0]["question"]
    becel_text = ifh.data.becel.load_task_split("rte", "validation").iloc[0]["text_a"]
    examples = pd.DataFrame({
        "prompt": [f"Tell me about {fact.subject}.", "Quiz: " + question, "Read: " + becel_text,
                   "Tell me about bread."],
        "response": [f"Its capital is {fact.object}.", "A", "ok", "It is baked."],
    })
    flags = ifh.data.contamination.contamination(examples)
    assert flags[["pararel_fact", "mmlu_ngram", "becel_ngram"]].to_numpy().tolist() == [
        [True, False, False], [False, True, False], [False, False, True], [False, False, False]]
    assert flags["contaminated"].tolist() == [True, True, True, False]


# ------------------------------------------------------------------------------------ mixtures


def fake_pool(beta_size=10):
    rows = []
    for task, n_templates, size in (("alpha", 3, 10), ("beta", 2, beta_size), ("gamma", 4, 10)):
        for t in range(n_templates):
            for i in range(size):
                rows.append({"task": task, "template": f"{task}_t{t}", "prompt": f"{task} {t} {i}",
                             "response": "r", "n_tokens": 5 + t, "contaminated": i == 0})
    rows += [{"task": "free-form", "template": "free-form", "prompt": f"free {i}", "response": "r", "n_tokens": 9,
              "contaminated": i < 3} for i in range(40)]
    return pd.DataFrame(rows)


def test_arms_have_the_same_size_and_tasks_and_differ_in_templates():
    pool = fake_pool()  # alpha 3, beta 2, gamma 4 templates; 9 clean examples each
    drawn = {kind: tuning.mixture(pool, kind, 18, seed=1, min_templates=2)
             for kind in ("templates-1", "templates-2", "templates-all", "free-form")}
    assert {kind: len(frame) for kind, frame in drawn.items()} == {k: 18 for k in drawn}
    for kind in ("templates-1", "templates-2", "templates-all"):
        assert drawn[kind].groupby("task").size().to_dict() == {"alpha": 6, "beta": 6, "gamma": 6}
    assert drawn["templates-1"].groupby("task")["template"].nunique().eq(1).all()
    assert drawn["templates-2"].groupby("task")["template"].nunique().eq(2).all()
    assert drawn["templates-all"].groupby("task")["template"].nunique().to_dict() == {"alpha": 3, "beta": 2, "gamma": 4}
    assert [tuning.templates_dose(drawn[k]) for k in ("templates-1", "templates-2", "templates-all")] == [1, 2, 3]
    # round robin: the chosen templates of a task are used as evenly as possible
    per_template = drawn["templates-all"].groupby(["task", "template"]).size()
    assert per_template.groupby(level="task").agg(lambda c: c.max() - c.min()).le(1).all()
    for frame in drawn.values():
        assert not frame["contaminated"].any()
        assert not frame.index.duplicated().any()
    again = tuning.mixture(pool, "templates-2", 18, seed=1, min_templates=2)
    assert again.index.equals(drawn["templates-2"].index)  # seeded
    other = [set(tuning.mixture(pool, "templates-1", 18, seed=s, min_templates=2)["template"]) for s in range(6)]
    assert len({frozenset(t) for t in other}) > 1  # the template choice is part of the seed


def test_the_task_set_needs_min_templates_and_enough_examples_per_template():
    pool = fake_pool()
    tasks, per_task = tuning.eligible_templates(pool, 18, min_templates=3)  # beta has 2 templates: out
    assert sorted(tasks) == ["alpha", "gamma"] and per_task == 9
    assert tasks["gamma"] == ["gamma_t0", "gamma_t1", "gamma_t2", "gamma_t3"]
    small = fake_pool(beta_size=5)  # beta: 4 clean examples per template, the others 9
    assert tuning.mixture(small, "templates-all", 18, min_templates=2).groupby("task").size().to_dict() == \
        {"alpha": 9, "gamma": 9}  # 6 per task is too many for beta: 9 each for two
    assert len(tuning.mixture(small, "free-form", 18, min_templates=2)) == 18
    with pytest.raises(ValueError, match="lower n_examples"):
        tuning.mixture(small, "templates-1", 30, min_templates=2)  # 10 per task: no template has that many
    with pytest.raises(ValueError, match="templates-<k>"):
        tuning.mixture(small, "paraphrase-poor", 18)
    with pytest.raises(ValueError, match="raise min_templates"):
        tuning.mixture(small, "templates-4", 18, min_templates=2)


# ------------------------------------------------------------------------------------ training


def tiny_setup(tokenizer=None):
    tokenizer = tokenizer or make_tiny_tokenizer()
    tokenizer.chat_template = tuning.GEMMA_CHAT_TEMPLATE
    examples = pd.DataFrame({
        "prompt": ["the capital of france is", "the capital of italy is", "berlin is located in",
                   "everyone knows that rome is in", "paris is a city in", "it is widely known that berlin was"],
        "response": ["paris", "rome", "germany", "italy", "france europe", "born"],
        "task": ["a", "a", "b", "b", "c", "c"], "template": ["a1", "a2", "b1", "b2", "c1", "c2"],
    })
    examples["n_tokens"] = [len(tuning.chat_tokens(tokenizer, tuning._chat(p, r))[0]) for p, r in
                            zip(examples["prompt"], examples["response"])]
    return tokenizer, examples


def test_loss_on_the_kept_positions_equals_the_full_loss_on_the_response():
    import torch

    tokenizer, examples = tiny_setup()
    model = make_tiny_llama()
    batch = tuning._collate(tokenizer)(tuning._encode(tokenizer, examples, 60))
    keep = batch.pop("logits_to_keep")
    with torch.no_grad():
        fast = model(**batch, logits_to_keep=keep).loss
        full_labels = torch.full_like(batch["input_ids"], -100)
        full_labels[:, -keep:] = batch["labels"]
        full = model(**{**batch, "labels": full_labels}).loss
    # the response tokens, and only they, carry labels
    n_response = sum(sum(tuning.chat_tokens(tokenizer, tuning._chat(p, r))[1])
                     for p, r in zip(examples["prompt"], examples["response"]))
    assert int((batch["labels"] != -100).sum()) == n_response
    torch.testing.assert_close(fast, full)


def test_collate_left_pads_with_positions_from_zero():
    tokenizer, examples = tiny_setup()
    batch = tuning._collate(tokenizer)(tuning._encode(tokenizer, examples.iloc[:2], 60))
    mask, positions = batch["attention_mask"], batch["position_ids"]
    for row in range(2):
        first = int(mask[row].argmax())
        assert positions[row, first] == 0 and positions[row, -1] == int(mask[row].sum()) - 1


class StopAfter:
    """A Trainer callback that interrupts training after ``step`` steps, as a killed run would."""

    def __init__(self, step):
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= outer.step:
                    raise KeyboardInterrupt

        self.step, self.callback = step, _Callback()


def test_lora_training_learns_is_seeded_and_resumes(tmp_path):
    import torch

    tokenizer, examples = tiny_setup()
    recipe = tuned.Recipe(name="tiny", n_examples=6, batch_size=2, epochs=3, learning_rate=5e-2, lora_r=4,
                           lora_alpha=8, lora_dropout=0.0, target_modules=("q_proj", "v_proj", "down_proj"))
    adapted, log = tuning.fit(make_tiny_llama(), tokenizer, examples, recipe, tmp_path / "a", progress=False)
    merged = adapted.merge_and_unload()
    assert log["steps"] == 9 and log["resumed_from"] is None
    assert log["losses"][-1]["loss"] < log["losses"][0]["loss"]
    assert not any("lora" in name for name in merged.state_dict())  # a plain model again
    assert not torch.equal(merged.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           make_tiny_llama().state_dict()["model.layers.0.self_attn.q_proj.weight"])
    again, _ = tuning.fit(make_tiny_llama(), tokenizer, examples, recipe, tmp_path / "b", progress=False)
    again = again.merge_and_unload()
    for key, tensor in merged.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], tensor)

    # interrupted during step 4 of 9 (a checkpoint every 9 // 5 = 1 step), then run again: it resumes
    stop = StopAfter(4)
    with pytest.raises(KeyboardInterrupt):
        tuning.fit(make_tiny_llama(), tokenizer, examples, recipe, tmp_path / "c", progress=False,
                        callbacks=[stop.callback])
    resumed, log = tuning.fit(make_tiny_llama(), tokenizer, examples, recipe, tmp_path / "c", progress=False)
    resumed = resumed.merge_and_unload()
    assert log["resumed_from"] and log["resumed_from"].endswith("checkpoint-3")
    for key, tensor in merged.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], tensor, rtol=1e-4, atol=1e-5)


def test_recipe_key_ignores_the_name_and_registry_entries_round_trip():
    a = tuned.Recipe(name="x")
    assert a.key == tuned.Recipe(name="y").key != dataclasses.replace(a, n_examples=10).key
    for name in ifh.model.registry.pair("pocket-tuned").tuned:
        spec = ifh.model.registry.get(name)
        recipe = tuned.recipe_of(spec)
        assert recipe.base == "gemma-3-270m" and spec.role == "instruction-tuned"
        assert tuned.spec_for(recipe).source == {"kind": "lora_tuned", **{
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(recipe).items() if k != "name"}}
    with pytest.raises(ValueError, match="templates-all"):
        tuned.Recipe(name="z", mixture="rich")
    assert [tuned.templates_per_task(m) for m in ("templates-1", "templates-12", "templates-all")] == [1, 12, None]


def test_a_tuned_model_is_stored_as_its_adapter_and_rebuilt_with_the_same_logits(tmp_path, monkeypatch):
    import torch

    base = save_tiny_family(tmp_path / "base", "gemma3")
    tokenizer, examples = tiny_setup(tuning.base_tokenizer(str(base)))
    pool = examples.assign(contaminated=False)  # tasks a, b, c with two templates of one example each
    recipe = tuned.Recipe(name="tiny-ift", base=str(base), n_examples=3, batch_size=2, epochs=4, learning_rate=5e-2,
                          lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=("q_proj", "v_proj", "down_proj"),
                          min_templates=2)
    kept = {}  # the tuned model as training left it in memory
    store = tuning.store

    def keep(model, *args):
        store(model, *args)
        kept["model"] = model

    monkeypatch.setattr(tuning, "store", keep)
    folder = tuning.train(recipe, pool, progress=False)
    assert folder == tuned.folders(recipe)[1] and not tuned.folders(recipe)[0].exists()
    assert {"adapter_model.safetensors", tuned.ADAPTER_CONFIG, tuned.CHAT_TEMPLATE, tuned.PROVENANCE} <= \
        {p.name for p in folder.iterdir()}

    ids = tokenizer(["The capital of France is Paris.", "Rome is located in Italy."], return_tensors="pt", padding=True)
    with torch.no_grad():
        unmerged = kept["model"](**ids).logits
        in_memory = kept["model"].merge_and_unload()(**ids).logits
        lm = ifh.model.models.load(tuned.spec_for(recipe), device="cpu")
        rebuilt = lm.model(**ids).logits
        base_logits = ifh.model.models.load(str(base), role="base", device="cpu").model(**ids).logits
    assert torch.equal(rebuilt, in_memory)  # the same fp32 merge of the same base and adapter
    torch.testing.assert_close(rebuilt, unmerged, rtol=1e-5, atol=1e-5)
    assert (rebuilt - base_logits).abs().max() > 1e-2  # tuning moved the model: the adapter is not zero
    assert lm.tokenizer.chat_template == tuning.GEMMA_CHAT_TEMPLATE
    assert lm.fingerprint.startswith(f"tiny-ift@{recipe.key}:") and lm.fingerprint.endswith("|float32")

    # what is stored is the change: a small fraction of the base's weights
    stored = sum(p.stat().st_size for p in folder.iterdir())
    adapter = (folder / "adapter_model.safetensors").stat().st_size
    base_weights = (base / "model.safetensors").stat().st_size
    assert adapter < 0.1 * base_weights and stored < 0.25 * base_weights, (adapter, stored, base_weights)

    # an adapter belongs to the weights it was trained on
    os.utime(base / "model.safetensors", (1, 1))  # a changed local base: another fingerprint
    with pytest.raises(ifh.model.models.ModelNotInstalledError, match="tuned on"):
        ifh.model.models.load(tuned.spec_for(recipe), device="cpu")
