"""The measure layer: the stamp every per-model frame carries, the runner's one loop over models, and the
measurements of chapter 4 and the BECEL classifiers on tiny models."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ifhelpers.measure import becel, layers, runner, stamp


def _lm(name, n_layers=2):
    return SimpleNamespace(name=name, n_layers=n_layers, spec=SimpleNamespace(role="base", family=f"{name}-family"))


def test_stamp_puts_the_model_in_front_and_the_depth_of_each_layer():
    frame = pd.DataFrame({"layer": [0, 1, 3], "value": [1.0, 2.0, 3.0]})
    frame.attrs["kept"] = 1
    out = stamp.stamp(frame, _lm("m", n_layers=4), "update")
    assert list(out.columns) == ["model", "role", "family", "n_layers", "layer", "value", "depth"]
    assert out[["model", "role", "family", "n_layers"]].iloc[0].tolist() == ["m", "base", "m-family", 4]
    assert out["depth"].tolist() == [0.25, 0.5, 1.0] and out.attrs == {"kept": 1}
    assert stamp.stamp(frame, _lm("m", 4), "state")["depth"].tolist() == [0.0, 0.25, 0.75]
    assert "model" not in frame  # the frame given is not changed
    with pytest.raises(ValueError, match="kind"):
        stamp.stamp(frame, _lm("m"), "weights")


def test_runner_loads_each_model_once_and_stacks_the_frames_in_model_order(monkeypatch):
    loaded = []

    def each(models, roles):
        for name in models:
            loaded.append((name, roles))
            yield _lm(name)

    monkeypatch.setattr(runner.loaded, "each", each)
    calls = []

    def counts(lm):
        calls.append(("counts", lm.name))
        frame = pd.DataFrame({"n": [len(lm.name)]})
        frame.attrs.update(same=(1, 2), per_model=lm.name)
        return {"counts": stamp.stamp(frame, lm)}

    def letters(lm):
        calls.append(("letters", lm.name))
        return {"letters": stamp.stamp(pd.DataFrame({"letter": list(lm.name)}), lm)}

    out = runner.run(["ab", "c"], [counts, letters], {"c": "base"})
    assert loaded == [("ab", {"c": "base"}), ("c", {"c": "base"})]
    assert calls == [("counts", "ab"), ("letters", "ab"), ("counts", "c"), ("letters", "c")]
    assert out["counts"][["model", "n"]].values.tolist() == [["ab", 2], ["c", 1]]
    assert out["letters"]["letter"].tolist() == ["a", "b", "c"] and out["letters"].index.tolist() == [0, 1, 2]
    assert out["counts"].attrs == {"same": (1, 2)}  # what differs between models is dropped
    assert out["seconds"]["model"].tolist() == ["ab", "c"] and (out["seconds"]["seconds"] >= 0).all()
    assert list(runner.by_model(out["letters"])) == ["ab", "c"]
    assert runner.by_model(out["letters"])["c"].index.tolist() == [0]
    with pytest.raises(ValueError, match="'counts'"):
        runner.run(["ab"], [counts, counts])


def test_classifiers_fit_every_task_in_order_and_stamp_the_tables(monkeypatch):
    def fake(lm, data, config, input_format="plain"):
        one = pd.DataFrame({"task": [data]})
        return SimpleNamespace(predictions=one, runs=one.assign(lr=1.0), history=one.assign(epoch=1))

    monkeypatch.setattr(becel, "finetune_task", fake)
    tables = becel.classifiers({"rte": "rte", "mrpc": "mrpc"}, None)(_lm("a"))
    assert list(tables) == ["becel_predictions", "becel_runs", "becel_history"]
    assert tables["becel_predictions"].values.tolist() == [["a", "base", "a-family", 2, "rte"],
                                                           ["a", "base", "a-family", 2, "mrpc"]]


def test_mechanisms_measurement_on_a_tiny_model(tiny_lm):
    from ifhelpers.data import pararel

    queries = pararel.load_queries(["P19", "P103"], n_per_relation=2, seed=0)
    pairs = pararel.relation_query_pairs(queries, 3, 0)
    subject_queries = queries[queries["uuid"] == queries["uuid"].iloc[0]]
    snippets = {subject_queries["subject"].iloc[0]: ["the capital of france is paris", "paris is a city"]}
    tables = layers.mechanisms(queries, pairs, subject_queries, snippets, {"the", "is", "a"}, prompt_ids=(0, 1),
                               n_nonparaphrase_pairs=20, extraction_n_queries=3, top_k=3, rank=4, max_rank=40,
                               seed=0)(tiny_lm)
    n = tiny_lm.n_layers
    assert set(tables) == {"consistency", "massive", "relation", "gap", "gap_facts", "extraction", "events",
                           "events_later_code", "attributes", "attribute_sets", "lens_examples"}
    assert all((t["model"] == "tiny-llama").all() and (t["n_layers"] == n).all() for t in tables.values())
    assert set(tables["consistency"]["prompt_id"]) == {0, 1}
    facts_mean = tables["gap_facts"].groupby(["prompt_id", "split", "layer"])["gap"].mean()
    gap = tables["gap"].set_index(["prompt_id", "split", "layer"])["gap"].reindex(facts_mean.index)
    np.testing.assert_allclose(facts_mean.to_numpy(), gap.to_numpy(), rtol=1e-6)
    assert tables["massive"]["layer"].tolist() == list(range(n + 1))
    assert tables["events"]["query"].nunique() == 3 and set(tables["events"]["block"]) == {"MHSA", "MLP"}
    np.testing.assert_allclose(tables["events"]["depth"].max(), 1.0)
    assert set(tables["attributes"]["layer"]) == set(range(n + 1))
    assert tables["lens_examples"]["layer"].tolist() == list(range(n + 1))
    assert all(1 <= len(tokens) <= 8 for tokens in tables["lens_examples"]["top_tokens"])
    # chapter 5's extraction reads the same queries from the pass's predictions (h^L only)
    again = layers.extraction(queries, (0, 1), 3, 0)(tiny_lm)
    pd.testing.assert_frame_equal(again["events"], tables["events"])
