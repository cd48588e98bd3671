"""The paper's own numbers: each transcribed table read back, and every parse of it (roles, families)."""

import pandas as pd
import pytest

from ifhelpers import paper


def test_paper_gaps_transcribe_tables_1_and_4():
    gaps = paper.gaps()
    assert len(gaps) == (11 + 4) * 3
    assert gaps["source"].str.startswith("paper").all()
    assert gaps.groupby("family")["model"].nunique().to_dict() == {"falcon": 2, "llama": 11, "t5": 2}
    assert (gaps["role"] == "base").sum() == 3 * 3
    llama = gaps[(gaps["model"] == "llama-7b (base model)")].set_index("dataset")["gap"]
    assert llama.to_dict() == {"mrpc": 0.010, "tapaco": 0.140, "pararel": 0.474}
    assert gaps.set_index(["model", "dataset"]).loc[("T5-XL (base model)", "mrpc"), "gap"] == pytest.approx(1.24e-4)


def test_paper_directions():
    d = paper.gap_directions().set_index(["family", "dataset"])
    # Table 1: every IFT model beats LLaMA on MRPC and ParaRel; on TaPaCo sharegpt is lower, gpt4-alpaca equal
    assert d.loc[("LLaMA-7b", "mrpc"), "n_tuned_above"] == 10
    assert d.loc[("LLaMA-7b", "pararel"), "n_tuned_above"] == 10
    assert d.loc[("LLaMA-7b", "tapaco"), ["n_tuned_above", "n_tuned_equal"]].tolist() == [8, 1]
    assert d.loc[("Falcon-7b", "tapaco"), "n_tuned_above"] == 1 and d.loc[("T5-XL", "mrpc"), "n_tuned"] == 1


def test_paper_text_counts_the_papers_own_table():
    both = pd.concat([paper.predictions_table(2), paper.predictions_table(5)], ignore_index=True)
    text = paper.direction_text(both, "PARAREL Cons.", threshold=1.4)
    # Table 2: LLaMA-7b 81.9; 8 of 10 tuned models above it, 6 by more than 1.4 points (by hand)
    assert text.startswith("LLaMA-7b 81.9; 10 tuned 80.5-84.8, 8 higher (6 by > 1.4")
    assert "T5-XL 75.5 → FlanT5-XL 80.1" in text and "Falcon-7b 76.2 → Falcon-Instruct-7b 72.2" in text
    assert "10 lower" in paper.direction_text(both, "MMLU Spread", higher=False)


def test_paper_table6_averages_reproduce_table2():
    # Table 2 BECEL columns of the paper (Acc., Cons. semantic / negation) for the LLaMA models.
    table2 = {"llama-7b (base model)": (74.4, 84.7, 42.3), "baize-7b": (75.0, 87.5, 46.5),
              "cot-7b": (76.6, 86.1, 51.9), "dolly-7b": (75.4, 86.2, 44.6), "flan-v2-7b": (78.4, 89.4, 51.0),
              "gpt4-alpaca-7b": (75.8, 84.8, 47.6), "oasst1-7b": (75.2, 85.6, 46.2),
              "sharegpt-7b": (74.8, 85.6, 42.8), "sni-7b": (75.1, 86.9, 45.1),
              "stanford-alpaca-7b": (76.1, 87.1, 47.0), "unnatural-instructions-7b": (76.8, 85.2, 50.0)}
    ours = paper.becel_table6_averages().pivot(index="model", columns="metric", values="value")
    assert set(ours.index) == set(table2)
    for model, (acc, sem, neg) in table2.items():
        assert ours.loc[model, "accuracy"] == pytest.approx(acc, abs=0.1)
        assert ours.loc[model, "semantic"] == pytest.approx(sem, abs=0.1)
        assert ours.loc[model, "negational"] == pytest.approx(neg, abs=0.1)
    printed = paper.becel_table2().pivot(index="model", columns="metric", values="value")
    assert printed.loc["llama-7b (base model)"].to_dict() == {"accuracy": 74.4, "semantic": 84.7, "negational": 42.3}
    long = paper.becel_table6()
    assert len(long) == 15 * 16 and long["source"].str.startswith("paper").all()
    assert long.groupby("model").size().eq(16).all()


def test_predictions_tables_2_and_5():
    paper2 = paper.predictions_table(2)
    assert len(paper2) == 11 and (paper2["role"] == "base").sum() == 1
    assert paper2.set_index("model").loc["llama-7b (base model)", "MMLU Spread"] == 1.6
    paper5 = paper.predictions_table(5)
    assert paper5.set_index("model").loc["Falcon-Instruct-7b", "PARAREL Cons."] == 72.2
    assert (paper5["role"] == "base").sum() == 2


def test_layer_span_reads_llama_layers_as_depths():
    assert paper.layer_span(3, 8) == (3 / 32, 8 / 32)
    assert paper.layer_span(13, 21, "update") == (14 / 32, 22 / 32)


def test_roles_and_families_of_printed_rows():
    assert paper.role_of("llama-7b (base model)") == "base" and paper.role_of("baize-7b") == "instruction-tuned"
    # Table 6 prints FlanT5-XL as "(base model)"; its numbers are Table 5's FlanT5-XL row
    assert paper.role_of("FlanT5-XL (base model)") == "instruction-tuned"
    assert paper.role_of("Falcon-7b") == "base" and paper.role_of("t5-xl-lm-adapt") == "base"
    assert [paper.family_of(m) for m in ("FlanT5-XL", "Falcon-Instruct-7b", "dolly-7b")] == ["t5", "falcon", "llama"]
    assert "role" not in paper.table(7) and set(paper.table(6)["role"]) == {"base", "instruction-tuned"}
