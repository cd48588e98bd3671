"""BECEL splits, consistency sets and the fine-tuning substitutes (paper §3, §C.2) on the real mirror."""

from pathlib import Path

import pytest

from ifhelpers.data import becel, sources
from ifhelpers.data.sources import DataSelectionError, MalformedRowsWarning

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))


SPLIT_ROWS = {
    ("snli", "validation"): 9842, ("snli", "test"): 9824,
    ("rte", "train"): 2490, ("rte", "validation"): 277,
    ("mrpc", "train"): 3668, ("mrpc", "validation"): 408, ("mrpc", "test"): 1725,
    ("wic", "train"): 5428, ("wic", "validation"): 638,
}
SET_ROWS = {
    ("snli", "semantic"): 4406, ("snli", "negational"): 2204, ("snli", "symmetric"): 3237,
    ("snli", "transitive"): 2375,
    ("rte", "semantic"): 248, ("rte", "negational"): 153, ("rte", "symmetric"): 1241,
    ("mrpc", "semantic"): 202, ("mrpc", "negational"): 290, ("mrpc", "symmetric"): 3668,
    ("wic", "semantic"): 140, ("wic", "negational"): 536, ("wic", "symmetric"): 5428, ("wic", "transitive"): 3162,
}


@pytest.mark.parametrize("task,split", list(SPLIT_ROWS))
def test_split_rows(task, split):
    frame = becel.load_task_split(task, split)
    assert len(frame) == SPLIT_ROWS[(task, split)]
    assert frame.attrs["n_malformed"] == 0
    assert set(frame["label"]) <= set(becel.LABEL_NAMES[task])
    assert (frame["text_a"].str.len() > 0).all() and (frame["text_b"].str.len() > 0).all()


@pytest.mark.parametrize("task,kind", list(SET_ROWS))
def test_consistency_set_rows(task, kind):
    frame = becel.load_consistency_set(task, kind)
    assert len(frame) == SET_ROWS[(task, kind)]
    assert frame.attrs["n_malformed"] == 0
    if kind == "symmetric":
        assert (frame["perturbed_a"] == frame["text_b"]).all() and (frame["perturbed_b"] == frame["text_a"]).all()
    if kind in ("semantic", "negational"):
        assert (frame["perturbed_a"] == frame["text_a"]).all()
        assert (frame["perturbed_b"].str.len() > 0).all()
    expect = {"semantic": "same", "symmetric": "same", "negational": "different", "transitive": "constraint"}
    assert (frame["expect"] == expect[kind]).all()


@pytest.mark.parametrize("task", becel.TASKS)
def test_every_negational_row_has_labels(task):
    frame = becel.load_consistency_set(task, "negational")
    assert frame["label"].notna().all() and frame["perturbed_label"].notna().all()
    assert set(frame["perturbed_label"]) <= set(becel.LABEL_NAMES[task])
    if task != "wic":  # negating flips the gold label in NLI and paraphrase detection
        assert (frame["label"] != frame["perturbed_label"]).all()


def test_transitive_constraints_and_origins():
    snli = becel.load_consistency_set("snli", "transitive")
    assert set(snli["label"]) == {2, 3}
    assert snli["allowed_labels"].map(lambda a: a in [(2,), (1, 2)]).all()
    assert snli["origin_a"].between(0, 9823).all() and snli["origin_b"].between(0, 9823).all()
    wic = becel.load_consistency_set("wic", "transitive")
    assert wic["origin_a"].between(0, 5427).all()


def test_wic_spans_point_at_the_word():
    frame = becel.load_task_split("wic", "validation")
    first = frame.iloc[0]
    assert first["text_a"][first["start_a"]:first["end_a"]].lower().startswith(first["word"][:4].lower())


def test_unknown_task_split_kind():
    with pytest.raises(DataSelectionError, match="snli, rte, mrpc, wic"):
        becel.load_task_split("qqp", "train")
    with pytest.raises(DataSelectionError, match="training_splits"):
        becel.load_task_split("snli", "train")
    with pytest.raises(DataSelectionError, match="valid choices: train, validation"):
        becel.load_task_split("rte", "test")
    with pytest.raises(DataSelectionError, match="semantic, negational, symmetric"):
        becel.load_consistency_set("rte", "transitive")


def test_snli_training_substitute():
    s = becel.training_splits("snli", seed=0)
    assert len(s.train) + len(s.dev) == 9842 and len(s.eval) == 9824
    assert len(s.dev) == round(0.2 * 9842)
    assert not set(s.train["row"]) & set(s.dev["row"])
    assert "validation" in s.note and "test" in s.note
    again = becel.training_splits("snli", seed=0)
    assert again.dev["row"].tolist() == s.dev["row"].tolist()
    assert becel.training_splits("snli", seed=1).dev["row"].tolist() != s.dev["row"].tolist()


@pytest.mark.parametrize("task", ["rte", "wic"])
def test_rte_wic_hold_out_from_train(task):
    s = becel.training_splits(task)
    assert len(s.train) + len(s.dev) == SPLIT_ROWS[(task, "train")]
    assert len(s.eval) == SPLIT_ROWS[(task, "validation")]
    assert (s.eval["split"] == "validation").all()


def test_mrpc_uses_its_own_splits():
    s = becel.training_splits("mrpc")
    assert (len(s.train), len(s.dev), len(s.eval)) == (3668, 408, 1725)


def test_malformed_rows_are_counted(tmp_path):
    folder = tmp_path / "becel" / "snli"
    folder.mkdir(parents=True)
    (folder / "negational.tsv").write_text(
        "index\tpremise\thypothesis\tlabel\thypothesis_neg\tneg_label\ttag\n"
        "0\tA dog runs.\tAn animal moves.\t0\tAn animal does not move.\t2\tnegation\n"
        "1\tA cat sits.\tA cat rests.\t0\tA cat does not rest.\t\tnegation\n"  # missing neg_label
        "2\tA man eats.\tA man\t0\n"  # too few fields
    )
    with pytest.warns(MalformedRowsWarning, match="2 malformed"):
        frame = becel.load_consistency_set("snli", "negational", data_dir=tmp_path)
    assert len(frame) == 1 and frame.attrs["n_malformed"] == 2
    assert frame["perturbed_label"].notna().all()
