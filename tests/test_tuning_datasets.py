"""One recipe for chapter 5's arms and the paper's instruction datasets: the loss mask, the whole path, the keys."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import ifhelpers as ifh
from ifhelpers.model import registry, tuned
from ifhelpers.train import tuning

from conftest import make_tiny_llama, make_tiny_tokenizer, save_tiny_family

#: A turn-by-turn template over the tiny word-level vocabulary: "user Q . assistant A . ..."
WORD_TEMPLATE = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} . {% endfor %}"
                 "{% if add_generation_prompt %}assistant {% endif %}")
TWO_TURNS = [{"role": "user", "content": "the capital of france is"}, {"role": "assistant", "content": "paris"},
             {"role": "user", "content": "the capital of italy is"}, {"role": "assistant", "content": "rome"}]


def word_tokenizer():
    tokenizer = make_tiny_tokenizer()
    tokenizer.chat_template = WORD_TEMPLATE
    return tokenizer


def test_every_assistant_turn_and_only_they_are_targets_of_a_two_turn_chat():
    import torch

    tokenizer = word_tokenizer()
    ids, targets = tuning.chat_tokens(tokenizer, TWO_TURNS)
    # user(unk=3) the capital of france is . assistant(unk) | paris . | user the capital of italy is . assistant | rome .
    assert ids == [3, 4, 5, 6, 7, 8, 21, 3, 9, 21, 3, 4, 5, 6, 15, 8, 21, 3, 14, 21]
    assert [i for i, t in enumerate(targets) if t] == [8, 9, 18, 19]

    short = [{"role": "user", "content": "berlin is located in"}, {"role": "assistant", "content": "germany"}]
    frame = pd.DataFrame({"messages": [TWO_TURNS, short]})
    encoded = tuning._encode(tokenizer, frame, max_tokens=64)
    assert encoded[0]["n_scored"] == 12 and encoded[1]["n_scored"] == 2
    assert [i for i, label in enumerate(encoded[0]["labels"]) if label != -100] == [8, 9, 18, 19]

    batch = tuning._collate(tokenizer)(encoded)
    keep = batch.pop("logits_to_keep")
    assert keep == 13 and batch["input_ids"].shape == (2, 20)  # the short chat is left-padded to 20
    model = make_tiny_llama()
    with torch.no_grad():
        loss = model(**batch, logits_to_keep=keep).loss
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits
    # by hand: position p predicts token p + 1, for the four targets of the chat and the two of the short one
    rows = [(0, p) for p in (7, 8, 17, 18)] + [(1, p) for p in (17, 18)]
    expected = [-torch.log_softmax(logits[r, p], -1)[batch["input_ids"][r, p + 1]] for r, p in rows]
    torch.testing.assert_close(loss, torch.stack(expected).mean())

    # a chat cut to max_tokens keeps the context and the targets before the cut
    cut = tuning._encode(tokenizer, frame.iloc[:1], max_tokens=9)[0]
    assert cut["input_ids"] == ids[:9] and cut["labels"][8] == 9 and cut["n_scored"] == 1


def test_a_template_that_rewrites_earlier_turns_is_refused():
    tokenizer = word_tokenizer()
    tokenizer.chat_template = "{{ messages | length }} {% for m in messages %}{{ m['content'] }} {% endfor %}"
    with pytest.raises(ValueError, match="turn-by-turn template"):
        tuning.chat_tokens(tokenizer, TWO_TURNS)


def test_chapter_5_recipe_keys_are_unchanged():
    """The stored tuned models and the committed run (results/tune_it_yourself_full) are found by these keys."""
    assert {name: tuned.recipe_of(registry.get(name)).key for name in registry.pair("pocket-tuned").tuned} == {
        "gemma-3-270m-ift-paraphrase-rich": "efd886773c", "gemma-3-270m-ift-single-template": "636b9df1ab",
        "gemma-3-270m-ift-free-form": "a14829401a"}
    from ifhelpers.chapters import tune_it_yourself as tiy

    arms = ["templates-1", "templates-2", "templates-4", "templates-all", "free-form"]
    keys = {f"{arm}/{seed}": r.key for (arm, seed), r in tiy.recipes("gemma-3-270m", arms, [0, 1, 2],
                                                                     n_examples=200).items()}
    assert keys == {
        "templates-1/0": "79183f2531", "templates-1/1": "f2381aa6b4", "templates-1/2": "4a598a1b4e",
        "templates-2/0": "e095e9a655", "templates-2/1": "869a55453c", "templates-2/2": "8e58c0b2ff",
        "templates-4/0": "00129b3dc7", "templates-4/1": "1b9a56d05f", "templates-4/2": "48ccaf008f",
        "templates-all/0": "e32d7d0a1a", "templates-all/1": "d4d206d2dd", "templates-all/2": "ae36d5cb4f",
        "free-form/0": "b104a1bc8a", "free-form/1": "510f065094", "free-form/2": "c3931ce8e8"}
    full = tuned.Recipe(name="x", method="full")
    assert full.key != tuned.Recipe(name="x").key  # a method other than the default enters the key


def test_the_dataset_models_are_registered_with_their_offline_labels_and_two_seeds_in_one_pair():
    pair = registry.pair("pocket-datasets")
    assert pair.same_family and pair.base == "gemma-3-270m"
    seed_0 = {"cot": "gemma-3-270m-ift-cot-stand-in", "flan-v2": "gemma-3-270m-ift-flan-v2-stand-in",
              "gpt4-alpaca": "gemma-3-270m-ift-gpt4-alpaca-stand-in", "stanford-alpaca": "gemma-3-270m-ift-stanford-alpaca-5k"}
    by_seed = {(r.mixture, r.seed): name for name in pair.tuned if (r := tuned.recipe_of(registry.get(name)))}
    assert by_seed == {**{(m, 0): n for m, n in seed_0.items()}, **{(m, 1): f"{n}-seed1" for m, n in seed_0.items()}}
    sets = ifh.data.instruction_sets.SETS
    assert {m for m, s in sets.items() if s.offline != "online only"} == set(seed_0)
    recipes = [tuned.recipe_of(registry.get(name)) for name in pair.tuned]
    settings = {tuple((k, v) for k, v in dataclasses.asdict(r).items() if k not in ("name", "mixture", "seed"))
                for r in recipes}
    assert len(settings) == 1  # one recipe: only the data (and the seed) differ
    for name in pair.tuned:  # a stand-in or subset says so in its name and its notes
        spec = registry.get(name)
        assert name.removesuffix("-seed1").endswith(("-stand-in", "-5k"))
        assert "stand-in" in spec.notes or "subset" in spec.notes
    with pytest.raises(ValueError, match="stanford-alpaca"):
        tuned.Recipe(name="z", mixture="alpaca")
    with pytest.raises(ValueError, match="training method"):
        tuned.Recipe(name="z", method="qlora")


def test_the_ten_datasets_online_form_one_pair_by_one_recipe_stored_apart_from_the_stand_ins():
    pair = registry.pair("paper-datasets")
    assert pair.same_family and pair.base == "gemma-3-270m"
    recipes = {tuned.recipe_of(registry.get(name)).mixture: tuned.recipe_of(registry.get(name)) for name in pair.tuned}
    assert set(recipes) == set(ifh.data.instruction_sets.SETS) and len(pair.tuned) == 10  # all ten, once each
    settings = {tuple((k, v) for k, v in dataclasses.asdict(r).items() if k not in ("name", "mixture"))
                for r in recipes.values()}
    assert len(settings) == 1 and recipes["dolly"].data == "online"  # one recipe: only the data differ
    offline = {tuned.recipe_of(registry.get(name)).mixture: tuned.recipe_of(registry.get(name))
               for name in registry.pair("pocket-datasets").tuned}
    for mixture, recipe in offline.items():  # the same recipe on the dataset itself is another model
        same_sizes = dataclasses.replace(recipes[mixture], name=recipe.name, data="mirror")
        assert recipes[mixture].key != same_sizes.key
        assert tuned.folders(recipes[mixture])[1] != tuned.folders(same_sizes)[1]
    assert tuned.data_label("dolly", "online").startswith("dolly (Hugging Face databricks/databricks-dolly-15k")
    with pytest.raises(ValueError, match="data='online' names one of the paper's instruction datasets"):
        tuned.Recipe(name="z", mixture="templates-all", data="online")
    with pytest.raises(ValueError, match="data origin"):
        tuned.Recipe(name="z", mixture="dolly", data="web")


def test_a_dataset_model_whose_data_cannot_be_read_here_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    from ifhelpers import cli

    assert ifh.data.sources.mirror_root() is not None  # the tests read the offline mirror
    online, stand_in = (tuned.recipe_of(registry.get(f"gemma-3-270m-ift-{name}")) for name in ("cot", "cot-stand-in"))
    with pytest.raises(tuned.DataOriginError, match="unset IFHELPERS_DATA and HF_HUB_OFFLINE") as refused:
        tuning.train(online)
    assert "or name gemma-3-270m-ift-cot-stand-in, its offline twin" in str(refused.value)
    with pytest.raises(tuned.DataOriginError, match="the mirror holds none of it"):
        tuned.check_data(tuned.recipe_of(registry.get("gemma-3-270m-ift-dolly")))
    tuned.check_data(stand_in)  # the mirror's stand-in, with the mirror: trains
    assert not tuned.folders(online)[1].exists() and not tuned.folders(online)[0].exists()  # nothing started
    # a run of a chapter on the ten is refused in one line, before any kernel, while the mirror is set
    assert cli.main(["run", "vector_space", "--models", "pair=paper-datasets", "--runs-dir",
                     str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifhelpers: gemma-3-270m-ift-baize is tuned on baize itself, online") and \
        len(err.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()
    monkeypatch.delenv("IFHELPERS_DATA")  # no mirror: the stand-in is refused, the dataset itself is not
    with pytest.raises(tuned.DataOriginError, match="no mirror is set: set IFHELPERS_DATA to the mirror") as refused:
        tuned.check_data(stand_in)
    assert "or name gemma-3-270m-ift-cot, its online twin" in str(refused.value)
    tuned.check_data(online)
    tuned.check_data(tuned.recipe_of(registry.get("gemma-3-270m-ift-free-form")))  # a T0 arm reads either


def test_a_tiny_model_tuned_on_two_datasets_through_the_whole_path(tmp_path):
    """Train -> store the adapter -> load -> engine.run: each tuned model differs from the base and from
    the other; same examples and steps for both; the data are the mirror's labelled subset and stand-in."""
    base = save_tiny_family(tmp_path / "base", "gemma3")
    outputs = {}
    request = ifh.model.engine.Request(next_token_logits=True)
    texts = ["The capital of France is", "Rome is located in"]
    base_lm = ifh.model.models.load(str(base), role="base", device="cpu")
    outputs["base"] = ifh.model.engine.run(base_lm, texts, request, cache=False)["next_token_logits"]
    logs = {}
    for name in ("stanford-alpaca", "gpt4-alpaca"):
        recipe = tuned.Recipe(name=f"tiny-{name}", base=str(base), mixture=name, n_examples=4, max_tokens=192,
                              batch_size=2, epochs=1, learning_rate=5e-2, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                              target_modules=("q_proj", "v_proj", "down_proj"))
        folder = tuning.train(recipe, progress=False)
        logs[name] = tuned.training_log(recipe)
        lm = ifh.model.models.load(tuned.spec_for(recipe), device="cpu")
        assert lm.tokenizer.chat_template == tuning.GEMMA_CHAT_TEMPLATE and (folder / "adapter_model.safetensors").exists()
        outputs[name] = ifh.model.engine.run(lm, texts, request, cache=False)["next_token_logits"]
    for name in ("stanford-alpaca", "gpt4-alpaca"):
        assert np.abs(outputs[name] - outputs["base"]).max() > 1e-3
        assert logs[name]["examples"] == 4 and logs[name]["steps"] == 2 and logs[name]["method"] == "lora"
        assert logs[name]["data"]["source"] == ifh.data.instruction_sets.SETS[name].label
        assert logs[name]["examples_by_task"] == {name: 4}
    assert logs["stanford-alpaca"]["data"]["n_contaminated"]["pararel_fact"] > 0  # the check ran on the set
    assert np.abs(outputs["stanford-alpaca"] - outputs["gpt4-alpaca"]).max() > 1e-3
    with pytest.raises(ValueError, match="method='lora'"):
        tuning.train(tuned.Recipe(name="tiny-full", base=str(base), mixture="gpt4-alpaca", method="full"))
