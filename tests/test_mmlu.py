"""MMLU questions and answer-order shuffles (paper §3, §C.1) on the real mirror."""

from pathlib import Path

import pytest

from ifhelpers.data import mmlu, sources
from ifhelpers.data.sources import DataNotFoundError, DataSelectionError, MalformedRowsWarning

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))


def test_counts():
    assert len(mmlu.load_subjects()) == 57
    test = mmlu.load_mmlu("test")
    dev = mmlu.load_mmlu("dev")
    assert len(test) == 14042 and len(dev) == 285
    assert test["subject"].nunique() == 57 and (dev.groupby("subject").size() == 5).all()
    assert test["question_id"].is_unique
    assert test.attrs["n_malformed"] == 0


def test_columns_and_answers():
    q = mmlu.load_mmlu("dev", subjects="anatomy")
    assert list(q.columns) == ["question_id", "subject", "split", "question", "A", "B", "C", "D", "answer",
                               "answer_index"]
    assert set(q["answer"]) <= set("ABCD")
    assert (q["answer"].map("ABCD".index) == q["answer_index"]).all()
    assert q.iloc[0]["question"] == "What is the embryological origin of the hyoid bone?"
    assert q.iloc[0]["answer"] == "D"
    assert mmlu.format_subject("high_school_mathematics") == "high school mathematics"


def test_unknown_subject_and_split():
    with pytest.raises(DataSelectionError, match="valid choices.*anatomy"):
        mmlu.load_mmlu(subjects=["anatomy", "astrology"])
    with pytest.raises(DataSelectionError, match="test, dev"):
        mmlu.load_mmlu("validation")


def test_missing_mirror(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.ENV_DATA, str(tmp_path))
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        mmlu.load_mmlu()


def test_subsampling_deterministic_per_subject():
    a = mmlu.load_mmlu(n_questions=7, seed=0)
    assert len(a) == 57 * 7
    assert a["question_id"].tolist() == mmlu.load_mmlu(n_questions=7, seed=0)["question_id"].tolist()
    b = mmlu.load_mmlu(subjects=["virology", "anatomy"], n_questions=7, seed=0)
    assert set(b["question_id"]) == set(a.loc[a["subject"].isin(["virology", "anatomy"]), "question_id"])
    c = mmlu.load_mmlu(n_questions=7, seed=1)
    assert set(a["question_id"]) != set(c["question_id"])


def test_shuffle_keeps_the_answer():
    q = mmlu.load_mmlu(subjects="anatomy")
    s = mmlu.shuffle_choices(q, seed=1)
    for (_, orig), (_, new) in zip(q.iterrows(), s.iterrows()):
        assert orig[orig["answer"]] == new[new["answer"]]
        assert sorted(orig[list("ABCD")]) == sorted(new[list("ABCD")])
        assert [orig["ABCD"[p]] for p in new["permutation"]] == list(new[list("ABCD")])
    assert s[list("ABCD")].equals(mmlu.shuffle_choices(q, seed=1)[list("ABCD")])
    assert not s["permutation"].equals(mmlu.shuffle_choices(q, seed=2)["permutation"])
    # a question's permutation does not depend on which other questions are present
    assert mmlu.shuffle_choices(q.iloc[[5]], seed=1)["permutation"].iloc[0] == s["permutation"].iloc[5]


def test_three_orderings():
    q = mmlu.load_mmlu("dev", subjects="anatomy")
    o = mmlu.choice_orderings(q, n_orderings=3, seed=0)
    assert len(o) == 3 * len(q) and sorted(o["ordering"].unique()) == [0, 1, 2]
    first = o[o["ordering"] == 0].reset_index(drop=True)
    assert first[list("ABCD")].equals(q[list("ABCD")])


def test_malformed_rows_are_counted(tmp_path):
    folder = tmp_path / "mmlu" / "test"
    folder.mkdir(parents=True)
    (folder / "toy_test.csv").write_text(
        "question,choice0,choice1,choice2,choice3,answer\n"
        "Good?,a,b,c,d,2\n"
        "Bad answer,a,b,c,d,7\n"
        "Too few,a,b,1\n"
        "\"Multi\nline\",a,b,c,d,0\n"
    )
    with pytest.warns(MalformedRowsWarning, match="2 malformed"):
        q = mmlu.load_mmlu("test", data_dir=tmp_path)
    assert q["question"].tolist() == ["Good?", "Multi\nline"]
    assert q["question_id"].tolist() == ["toy/test/0", "toy/test/3"]
    assert q.attrs["n_malformed"] == 2
