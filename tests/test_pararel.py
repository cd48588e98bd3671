"""ParaRel templates, facts and queries (paper §2, §3, §4) on the real mirror."""

import json
from pathlib import Path

import pytest

from ifhelpers.data import pararel, sources
from ifhelpers.data.sources import DataSelectionError, MalformedRowsWarning

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))


@pytest.fixture(scope="module")
def queries():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(sources.ENV_DATA, str(MIRROR))
        return pararel.load_queries()


def test_usable_relations_are_those_with_templates_and_facts():
    relations = pararel.load_relations()
    assert len(relations) == 39
    assert "P31" not in relations and "P527" not in relations
    assert relations == pararel.PATTERN_RELATIONS  # the hard-coded online list matches the mirror


def test_relation_summary_counts():
    s = pararel.relation_summary()
    assert len(s) == 41
    assert s["n_templates"].sum() == 329 and s["n_templates_kept"].sum() == 214
    assert s["usable"].sum() == 39 and s["usable_for_pairs"].sum() == 35
    assert set(s.loc[s["usable"] & ~s["usable_for_pairs"], "relation"]) == {"P37", "P140", "P190", "P1001"}
    assert s["n_fact_rows"].sum() == 29411 - 879 - 922  # T-REx rows of the 39 usable relations


def test_unknown_relation_lists_choices():
    with pytest.raises(DataSelectionError, match="valid choices.*P19"):
        pararel.load_facts("P9999")
    with pytest.raises(DataSelectionError, match="no paraphrased templates"):
        pararel.load_patterns("P31")


def test_template_rule():
    p = pararel.load_patterns("P19")
    assert len(p) == 13 and p["ends_with_object"].sum() == 7
    kept = p[p["ends_with_object"]]
    assert all(pararel.template_ends_with_object(t) for t in kept["pattern"])
    assert "[X] was born in [Y]." in set(kept["pattern"])
    assert "[X] was a [Y]-born person." in set(p.loc[~p["ends_with_object"], "pattern"])


def test_fill_template():
    assert pararel.fill_template("[X] was born in [Y].", "Moe Koffman") == ("Moe Koffman was born in", 0, 11)
    q, s, e = pararel.fill_template("The capital of [X] is [Y] .", "Peru")
    assert q == "The capital of Peru is" and q[s:e] == "Peru"
    with pytest.raises(ValueError, match="before"):
        pararel.fill_template("[Y] is the capital of [X].", "Peru")
    assert pararel.final_word("Bing Crosby label :") == ":"


def test_every_query_has_subject_once_and_no_slots(queries):
    assert len(queries) == 138338
    assert queries["query"].str.contains(r"\[X\]|\[Y\]").sum() == 0
    for q, s, start, end in zip(queries["query"], queries["subject"], queries["subject_start"],
                                queries["subject_end"]):
        assert q[start:end] == s
        assert q.count(s) == 1
        assert q == q.strip()
    assert queries.attrs["n_malformed"] == 0


def test_facts_deduplicate_subjects_and_gather_objects():
    facts = pararel.load_facts("P190")
    assert facts.attrs["n_rows"] == 671 and len(facts) == 247
    assert facts.attrs["n_duplicate_subject_rows"] == 424
    assert facts["subject"].is_unique
    istanbul = facts.set_index("subject").loc["Istanbul"]
    assert istanbul["n_objects"] == len(istanbul["objects"]) > 1
    assert istanbul["object"] == istanbul["objects"][0]


def test_subsampling_is_deterministic_and_order_independent():
    a = pararel.load_facts("P19", n_per_relation=30, seed=0)
    pararel.load_facts("P20", n_per_relation=30, seed=0)
    b = pararel.load_queries(["P20", "P19"], n_per_relation=30, seed=0)
    c = pararel.load_facts("P19", n_per_relation=30, seed=1)
    assert len(a) == 30
    assert a["uuid"].tolist() == pararel.load_facts("P19", n_per_relation=30, seed=0)["uuid"].tolist()
    assert list(dict.fromkeys(b.loc[b["relation"] == "P19", "uuid"])) == a["uuid"].tolist()
    assert set(a["uuid"]) != set(c["uuid"])
    assert len(pararel.load_facts("P264", n_per_relation=10_000)) == 52  # at most what exists


def test_paraphrase_sets(queries):
    small = queries[queries["relation"].isin(["P19", "P1001"])]
    sets = pararel.paraphrase_sets(small)
    assert list(sets.columns[:4]) == ["set_id", "item_id", "text", "source"]
    assert sets["set_id"].nunique() == small.groupby(["relation", "uuid"]).ngroups


def test_relation_query_pairs_respect_footnote_6(queries):
    small = pararel.load_queries(["P19", "P20", "P101", "P17"], n_per_relation=40, seed=0)
    pairs = pararel.relation_query_pairs(small, n_pairs_per_relation=15, seed=0)
    assert (pairs["subject_a"] != pairs["subject_b"]).all()
    assert (pairs["final_word_a"] != pairs["final_word_b"]).all()
    same = pairs[pairs["kind"] == "same_relation"]
    diff = pairs[pairs["kind"] == "different_relation"]
    assert (same["relation_a"] == same["relation_b"]).all() and (same["template_id_a"] != same["template_id_b"]).all()
    assert (diff["relation_a"] != diff["relation_b"]).all()
    objects = dict(zip(small.index, small["objects"]))
    assert all(not set(objects[a]) & set(objects[b]) for a, b in zip(pairs["row_a"], pairs["row_b"]))
    # P17's three templates all end in "in": no same-relation pair is possible
    assert pairs.attrs["shortfall"][("P17", "same_relation")] == 15
    again = pararel.relation_query_pairs(small, n_pairs_per_relation=15, seed=0)
    assert again[["row_a", "row_b"]].equals(pairs[["row_a", "row_b"]])


def test_malformed_rows_are_counted(tmp_path):
    (tmp_path / "pararel" / "patterns").mkdir(parents=True)
    (tmp_path / "pararel" / "trex").mkdir(parents=True)
    (tmp_path / "pararel" / "patterns" / "P1.jsonl").write_text("\n".join([
        json.dumps({"pattern": "[X] lives in [Y]."}),
        json.dumps({"pattern": "[X] and [X] in [Y]."}),  # two [X]
        json.dumps({"lemma": "no pattern"}),
    ]) + "\n")
    (tmp_path / "pararel" / "trex" / "P1.jsonl").write_text("\n".join([
        json.dumps({"sub_label": "Ann", "obj_label": "Oslo", "uuid": "u1"}),
        json.dumps({"sub_label": "Bob", "obj_label": "", "uuid": "u2"}),  # empty object
        "{broken",
    ]) + "\n")
    with pytest.warns(MalformedRowsWarning):
        q = pararel.load_queries("P1", data_dir=tmp_path)
    assert q["query"].tolist() == ["Ann lives in"]
    assert q.attrs["n_malformed"] == 4
    assert {line for _, line, _ in q.attrs["malformed"]} == {2, 3}
