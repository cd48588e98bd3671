"""MRPC pairs, the TaPaCo stand-in, and paraphrase-set pairs (paper §2, §B.1) on the real mirror."""

from pathlib import Path

import pytest

from ifhelpers.data import pararel, paraphrases, sources
from ifhelpers.data.sources import DataNotFoundError, DataSelectionError, MalformedRowsWarning

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))


def test_mrpc_pairs():
    pairs = paraphrases.load_mrpc_pairs("test")
    assert len(pairs) == 1725 and pairs["is_paraphrase"].sum() == 1147
    assert (pairs["source"] == "mrpc").all() and pairs["pair_id"].is_unique
    assert len(paraphrases.load_mrpc_pairs("all")) == 3668 + 408 + 1725
    with pytest.raises(DataSelectionError, match="validation"):
        paraphrases.load_mrpc_pairs("dev")


def test_offline_tapaco_is_a_labelled_stand_in():
    sets = paraphrases.load_tapaco_sets()
    assert (sets["source"] == paraphrases.STAND_IN_SOURCE).all()
    assert sets.attrs["source"] == "stand-in: msrp/opinosis paraphrase groups"
    assert sets["set_id"].nunique() == 274 + 163 and len(sets) == 859 + 669
    assert sets.groupby("set_id").size().min() >= 2
    assert list(sets.columns[:4]) == ["set_id", "item_id", "text", "source"]


def test_group_corpora():
    msrp = paraphrases.load_grouped_paraphrases("msrp")
    assert len(msrp) == 859 and msrp["set_id"].nunique() == 274
    assert msrp.iloc[0]["text"].startswith("A new feature dubbed FileVault")
    with pytest.raises(DataSelectionError):
        paraphrases.load_grouped_paraphrases("quora")


def test_set_subsampling_is_deterministic():
    a = paraphrases.load_tapaco_sets(n_sets=20, seed=0)
    assert a["set_id"].nunique() == 20
    assert a.equals(paraphrases.load_tapaco_sets(n_sets=20, seed=0))
    assert set(a["set_id"]) != set(paraphrases.load_tapaco_sets(n_sets=20, seed=1)["set_id"])
    assert a.attrs["source"] == paraphrases.STAND_IN_SOURCE


def test_pararel_sets_share_the_shape():
    q = pararel.load_queries("P19", n_per_relation=10, seed=0)
    sets = pararel.paraphrase_sets(q)
    assert sets.groupby("set_id").size().eq(7).all() and len(sets) == 10 * 7  # 7 kept templates per fact
    assert (sets["source"] == "pararel").all()


def test_missing_group_files(tmp_path):
    with pytest.raises(DataNotFoundError, match="phrases.txt"):
        paraphrases.load_grouped_paraphrases("msrp", data_dir=tmp_path)


def test_malformed_group_rows(tmp_path):
    folder = tmp_path / "paraphrase_sets" / "msrp_paraphrase_grouped" / "msrp_distribute"
    folder.mkdir(parents=True)
    (folder / "phrases.txt").write_text("one\nuno\n\n")
    (folder / "phrase_groups.csv").write_text("phrase_index,paraphrase_group_index\n0,0\n1,0\n9,1\n2,1\nx,2\n")
    with pytest.warns(MalformedRowsWarning, match="3 malformed"):
        frame = paraphrases.load_grouped_paraphrases("msrp", data_dir=tmp_path)
    assert frame["text"].tolist() == ["one", "uno"] and frame.attrs["n_malformed"] == 3
