"""Consistent predictions (paper §3, Table 2, App. C.1): the first-token rule, answer letters, scores.

Runs in seconds without real models: tiny WordLevel / byte-level BPE tokenizers built here, a tiny
random-weight Llama, and a stand-in for the engine where the test chooses the predictions. The pocket
models' tokenizers are checked too (converted into the tests' private cache on first use).
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ifhelpers import paper
from ifhelpers import stats as ifh_stats
from ifhelpers.model import engine, probes, registry, tokens
from ifhelpers import metrics
from ifhelpers.chapters import predictions
from ifhelpers.data import prompts, sources
from ifhelpers.model.models import LoadedModel, wrap
from ifhelpers.measure import pararel as measure_pararel
from ifhelpers.measure import mmlu as measure_mmlu

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


# ------------------------------------------------------------------------------------------ tokenizers

WORDS = ("<pad> <unk> <s> Uda District is located in , which Japan Paris France Spain New York Jersey Kresttsy "
         "Russia borders shares border with Everyone knows that It widely known the").split()


def wordlevel_tokenizer(extra=()):
    """Whitespace WordLevel: every word is one token, " Paris" and "Paris" alike."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate([*WORDS, *extra])}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def bpe_tokenizer():
    """Byte-level BPE trained on a corpus where " Paris" becomes one token and " Uruguay" does not."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Paris is located in France ."] * 50 + ["Answer: A B C D"] * 20 + ["Uruguay"] + \
             ["The capital of France is Paris , which is located in"] * 20
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")


def fake_lm(tokenizer, role="base", prompt_format="base"):
    spec = registry.ModelSpec(name="tiny", source={"kind": "memory"}, family="memory", role=role,
                              prompt_format=prompt_format)
    return LoadedModel(spec=spec, model=None, tokenizer=tokenizer, fingerprint="tiny")


def query_rows(facts, templates):
    """A load_queries-like frame: ``facts`` = [(relation, uuid, subject, objects)], templates per relation."""
    rows = []
    for relation, uuid, subject, objects in facts:
        for template_id, pattern in enumerate(templates[relation]):
            query = pattern.replace("[X]", subject)
            start = query.index(subject)
            rows.append(dict(relation=relation, uuid=uuid, subject=subject, object=objects[0], objects=tuple(objects),
                             template_id=template_id, pattern=pattern + " [Y]", query=query, subject_start=start,
                             subject_end=start + len(subject), final_word=query.split()[-1].lower()))
    return pd.DataFrame(rows)


def fake_engine(monkeypatch, choose):
    """Replace the engine: ``choose(prompt) -> token id`` is the top-1 prediction."""
    def run(lm, texts, request, positions=None, cache=True, progress=None, **_):
        n = len(texts)
        top = np.array([[choose(t)] + [0] * (request.top_k - 1) for t in texts], dtype=np.int64)
        return {"top_ids": top, "top_logprobs": np.zeros(top.shape, dtype=np.float32),
                "resid": np.zeros((n, 2, 4), dtype=np.float32)}
    monkeypatch.setattr(engine, "run", run)


# ------------------------------------------------------------------------------------------ first-token rule


def test_first_token_rule_wordlevel_multi_token_and_n_m(monkeypatch):
    tok = wordlevel_tokenizer()
    vocab = tok.get_vocab()
    templates = {"P17": ["[X] is located in", "[X] , which is located in"], "P47": ["[X] borders", "[X] shares border with"]}
    queries = query_rows([("P17", "u1", "Uda District", ["Japan"]), ("P17", "u2", "Kresttsy", ["New York"]),
                          ("P47", "u3", "France", ["Spain", "New Jersey"])], templates)
    lm = fake_lm(tok)
    frame = probes.pararel_prompts(lm, queries, prompt_ids=(0,))
    # " Paris"-like single tokens: the object's own id; "New York": its first token "New".
    assert frame.loc[frame["uuid"] == "u1", "object_first_ids"].iloc[0] == (vocab["Japan"],)
    assert frame.loc[frame["uuid"] == "u2", "object_first_ids"].iloc[0] == (vocab["New"],)
    # N-M: one first id per gold object.
    assert frame.loc[frame["uuid"] == "u3", "object_first_ids"].iloc[0] == (vocab["Spain"], vocab["New"])

    def choose(prompt):
        if prompt.startswith("Uda"):
            return vocab["Japan"] if "which" in prompt else vocab["Paris"]
        if prompt.startswith("Kresttsy"):
            return vocab["New"]  # first token of "New York": counted correct (lenient rule)
        return vocab["Spain"] if "borders" in prompt else vocab["New"]  # two different gold objects

    fake_engine(monkeypatch, choose)
    out, _ = probes.run_pararel(lm, queries, prompt_ids=(0,))
    got = dict(zip(zip(out["uuid"], out["template_id"]), out["correct"]))
    assert got == {("u1", 0): False, ("u1", 1): True, ("u2", 0): True, ("u2", 1): True,
                   ("u3", 0): True, ("u3", 1): True}
    scores = measure_pararel.pararel_prompt_scores(out).set_index("relation")
    # P17: 3 of 4 queries correct; pairs: u1 disagrees, u2 agrees.
    assert scores.loc["P17", "accuracy"] == pytest.approx(0.75)
    assert scores.loc["P17", "consistency"] == pytest.approx(0.5)
    # P47: both answers are gold, but they are different objects: correct yet inconsistent.
    assert scores.loc["P47", "accuracy"] == 1.0 and scores.loc["P47", "consistency"] == 0.0


def test_first_token_rule_bpe_single_vs_split_object(monkeypatch):
    tok = bpe_tokenizer()
    prompt = "Kresttsy is located in"
    paris = tokens.continuation_ids(tok, prompt, " Paris")
    uruguay = tokens.continuation_ids(tok, prompt, " Uruguay")
    assert tok.convert_ids_to_tokens(paris) == ["ĠParis"]  # one token, with the space marker
    assert len(uruguay) > 1 and tok.convert_ids_to_tokens(uruguay[:1])[0].startswith("Ġ")
    queries = query_rows([("P17", "u1", "Kresttsy", ["Paris"]), ("P17", "u2", "Uda District", ["Uruguay"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"]})
    lm = fake_lm(tok)

    def choose(text):
        # u1: "ĠParis" then the bare "Paris" (no space marker: a different token, so wrong);
        # u2: the first piece of " Uruguay" both times.
        if text.startswith("Kresttsy"):
            return paris[0] if "which" not in text else tok.convert_tokens_to_ids("Paris")
        return uruguay[0]

    fake_engine(monkeypatch, choose)
    out, _ = probes.run_pararel(lm, queries, prompt_ids=(0,))
    assert out["correct"].tolist() == [True, False, True, True]
    assert out.loc[0, "prediction"] == "Paris"  # decoded and stripped
    scores = measure_pararel.pararel_prompt_scores(out)
    assert scores["consistency"].item() == pytest.approx(0.5)
    assert scores["accuracy"].item() == pytest.approx(0.75)


def test_prediction_ids_not_strings_decide_consistency():
    """" Paris" and "Paris" decode to the same stripped text but are different predictions."""
    frame = pd.DataFrame({"prompt_id": 0, "relation": "P1", "uuid": "a", "template_id": [0, 1],
                          "prediction_id": [5, 6], "prediction": ["Paris", "Paris"], "object_first_ids": [(5,), (5,)]})
    tidy = probes.pararel_predictions(frame)
    assert metrics.pararel.pararel_query_pairs(tidy)["consistent"].tolist() == [False]


def test_blank_first_token_is_reported():
    tok = bpe_tokenizer()
    queries = query_rows([("P17", "u1", "Kresttsy", ["1990", "Paris"])], {"P17": ["[X] is located in", "[X] , which is located in"]})
    lm = fake_lm(tok)
    frame = probes.pararel_prompts(lm, queries, prompt_ids=(0,))
    stats = measure_pararel.object_token_stats(lm, frame).iloc[0]
    assert stats["n_objects"] == 2 and stats["blank_first_token"] == 1  # " 1990" -> "Ġ", "1", "9", "9", "0"
    assert stats["multi_token"] == 0.5


def test_restrict_to_candidates_reads_the_top_k(monkeypatch):
    tok = wordlevel_tokenizer()
    v = tok.get_vocab()
    queries = query_rows([("P17", "u1", "Kresttsy", ["Russia"]), ("P17", "u2", "Uda District", ["Japan"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"]})
    frame = probes.pararel_prompts(fake_lm(tok), queries, prompt_ids=(0,))
    frame["prediction_id"] = v["the"]
    frame["prediction"] = "the"
    top = np.array([[v["the"], v["Russia"], v["Japan"]],   # u1: Russia is the best candidate
                    [v["the"], v["Japan"], v["Russia"]],   # u1: Japan is (wrong, and disagrees)
                    [v["the"], v["Paris"], v["It"]],       # u2: no candidate in the top k
                    [v["Japan"], v["the"], v["the"]]])     # u2: Japan
    candidates = {"P17": frozenset({v["Russia"], v["Japan"]})}
    out = measure_pararel.restrict_to_candidates(frame, top, candidates)
    assert out["in_top_k"].tolist() == [True, True, False, True]
    assert out["correct"].tolist() == [True, False, False, True]
    assert out["prediction_id"].iloc[2] < 0 and "prediction" not in out
    scores = measure_pararel.pararel_prompt_scores(out)
    assert scores["accuracy"].item() == 0.5 and scores["consistency"].item() == 0.0
    with pytest.raises(ValueError, match="rows"):
        measure_pararel.restrict_to_candidates(frame, top[:2], candidates)


def test_relation_candidates_cover_every_object(monkeypatch):
    if not MIRROR.is_dir():
        pytest.skip("offline mirror not found")
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    from ifhelpers.data import pararel

    tok = bpe_tokenizer()
    queries = pararel.load_queries(["P30"], 3, seed=0)
    frame = probes.pararel_prompts(fake_lm(tok), queries, prompt_ids=(0,))
    candidates = measure_pararel.relation_candidates(fake_lm(tok), frame)
    assert set(candidates) == {"P30"}
    assert all(i in candidates["P30"] for ids in frame["object_first_ids"] for i in ids)


# ------------------------------------------------------------------------------------------ ParaRel summaries


def scores_frame():
    rows = []
    for model, role, cons in (("b", "base", (0.5, 0.6, 0.7)), ("t", "instruction-tuned", (0.8, 0.8, 0.8))):
        for p, c in enumerate(cons):
            for relation, shift in (("P1", 0.0), ("P2", 0.1)):
                rows.append(dict(model=model, role=role, prompt_id=p, relation=relation, n_facts=2, n_queries=4,
                                 n_pairs=2, accuracy=0.5 + shift, consistency=c + shift))
    return pd.DataFrame(rows)


def test_pararel_summary_mean_and_std_over_prompts():
    summary = predictions.pararel_summary(scores_frame())
    assert summary.loc["b", "consistency"] == pytest.approx(0.65)
    assert summary.loc["b", "consistency_std"] == pytest.approx(0.1)  # ddof=1 over the prompt means
    assert summary.loc["t", "consistency_std"] == pytest.approx(0.0)
    assert summary.loc["t", "accuracy"] == pytest.approx(0.55)
    rule = predictions.footnote4_rule(summary, base="b")
    assert rule.loc["t", "difference"] == pytest.approx(0.2) and rule.loc["t", "threshold"] == pytest.approx(0.1)
    assert bool(rule.loc["t", "beyond_threshold"])
    by_rel = predictions.pararel_by_relation(scores_frame())
    assert by_rel.groupby("model")["consistency"].mean().to_dict() == pytest.approx(summary["consistency"].to_dict())


def test_a_relation_with_one_template_keeps_its_accuracy(monkeypatch):
    tok = wordlevel_tokenizer()
    vocab = tok.get_vocab()
    queries = query_rows([("P17", "u1", "Kresttsy", ["Russia"]), ("P37", "u2", "Uda District", ["Japan"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"], "P37": ["[X] is located in"]})
    fake_engine(monkeypatch, lambda text: vocab["Russia"])
    frame, _ = probes.run_pararel(fake_lm(tok), queries, prompt_ids=(0, 1, 2))
    scores = measure_pararel.pararel_prompt_scores(frame)
    assert set(scores["relation"]) == {"P17", "P37"} and scores.attrs["single_template_relations"] == ["P37"]
    assert sorted(scores["prompt_id"].unique()) == [0, 1, 2]
    p17, p37 = scores[scores["relation"] == "P17"], scores[scores["relation"] == "P37"]
    assert (p17["accuracy"] == 1).all() and (p17["consistency"] == 1).all()
    # P37 (gold Japan, predicted Russia) has no pair: no consistency, but its accuracy 0 counts
    assert (p37["accuracy"] == 0).all() and p37["consistency"].isna().all() and (p37["n_pairs"] == 0).all()
    summary = predictions.pararel_summary(scores.assign(model="m", role="base")).loc["m"]
    # macro accuracy (1 + 0)/2; consistency over P17 only; micro: 2 of 3 queries correct
    assert (summary["accuracy"], summary["consistency"], summary["accuracy_micro"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert (summary["n_relations"], summary["n_relations_with_pairs"]) == (2, 1)
    wide = predictions.pararel_wide(scores.assign(model="m", role="base"))
    assert wide[("accuracy", "m")].notna().sum() == 2 and wide[("consistency", "m")].notna().sum() == 1


# ------------------------------------------------------------------------------------------ answer letters


@pytest.mark.parametrize("make", [wordlevel_tokenizer, bpe_tokenizer])
def test_answer_letter_ids_tiny_tokenizers(make):
    tok = make(extra=("A", "B", "C", "D", "Answer", ":")) if make is wordlevel_tokenizer else make()
    texts = ["Q?\nA. x\nB. y\nC. z\nD. w\nAnswer:", "The answer is:"]
    ids = measure_mmlu.answer_letter_ids(tok, texts)
    assert ids.shape == (2, 4) and (ids == ids[0]).all() and len(set(ids[0])) == 4
    names = tok.convert_ids_to_tokens(ids[0].tolist())
    if make is bpe_tokenizer:
        assert names == ["ĠA", "ĠB", "ĠC", "ĠD"]  # the spaced letter, not the bare "A"
        assert tok.convert_tokens_to_ids("A") not in ids[0]
    else:
        assert names == ["A", "B", "C", "D"]


POCKET = ["gemma-3-270m", "smollm2-135m-instruct"]


@pytest.mark.parametrize("name", POCKET)
def test_answer_letter_ids_pocket_tokenizers(name):
    # The pocket models as the chapters get them: converted into the tests' private cache (conftest sets
    # IFHELPERS_CACHE) on first use, so this case runs on a fresh machine too.
    from transformers import AutoTokenizer

    from ifhelpers.model.models import weights_location

    folder, _ = weights_location(registry.get(name))
    tok = AutoTokenizer.from_pretrained(folder)
    spec = registry.get(name)
    texts = [prompts.format_mmlu("high_school_biology", "Which is a cell?", ["a", "b", "c", "d"], i,
                                 spec.prompt_format, tok) for i in range(3)]
    texts += [prompts.format_mmlu("anatomy", "Q", ["1", "2", "3", "4"], 0, "base", tok)]
    ids = measure_mmlu.answer_letter_ids(tok, texts)
    assert (ids == ids[0]).all()
    names = tok.convert_ids_to_tokens(ids[0].tolist())
    marker = "▁" if spec.family == "gemma3" else "Ġ"
    assert names == [marker + letter for letter in "ABCD"]
    bare = tok.convert_tokens_to_ids(list("ABCD"))
    assert not set(bare) & set(ids[0].tolist())


def test_answer_letter_ids_reject_merged_letters():
    tok = wordlevel_tokenizer()  # "A".."D" are unknown: every letter is <unk>
    with pytest.raises(ValueError, match="share a first token"):
        measure_mmlu.answer_letter_ids(tok, ["Answer :"])


def test_letter_report_names_the_letters_and_the_mass_they_get():
    results = pd.DataFrame({"letter_mass": [0.5, 0.7]})
    results.attrs.update(letter_ids_shared=True, letter_ids=(3, 4, 5, 6))
    lm = SimpleNamespace(tokenizer=SimpleNamespace(convert_ids_to_tokens=lambda ids: [f"t{i}" for i in ids]))
    report = measure_mmlu.letter_report(lm, results)
    assert report.to_dict("records") == [{"candidates": ["t3", "t4", "t5", "t6"], "same_ids": True,
                                          "mean_letter_mass": 0.6}]
    assert list(report.rename(columns=predictions.LABELS).columns) == ["candidates", "same ids for every prompt", "probability on A-D"]
    results.attrs.update(letter_ids_shared=False, letter_ids=None)
    assert measure_mmlu.letter_report(lm, results)["candidates"].item() == "differ between prompts"


# ------------------------------------------------------------------------------------------ MMLU


def tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bpe_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id)
    return wrap(LlamaForCausalLM(config), tok, "tiny-llama")


def questions_frame(n=4):
    return pd.DataFrame({
        "question_id": [f"anatomy/test/{i}" for i in range(n)], "subject": "anatomy", "split": "test",
        "question": [f"Question {i} is located in" for i in range(n)],
        "A": "Paris", "B": "France", "C": "Answer", "D": "located", "answer": list("ABCD"[:n]),
        "answer_index": list(range(n))})


def test_mmlu_setups_nine_per_question():
    setups = measure_mmlu.mmlu_setups(questions_frame(), n_shuffles=3, seed=0)
    assert len(setups) == 4 * 9
    assert setups.groupby(["instruction", "shuffle"]).size().eq(4).all()
    original = setups[setups["shuffle"] == 0]
    assert (original["A"] == "Paris").all()
    # the options move with the answer: the text at the answer letter is the original correct option
    original = questions_frame().set_index("question_id")
    for row in setups.to_dict("records"):
        q = original.loc[row["question_id"]]
        assert row[row["answer"]] == q[q["answer"]]


def test_run_mmlu_scores_letters_at_last_position():
    import torch

    lm = tiny_llama()
    setups = measure_mmlu.mmlu_setups(questions_frame(), n_shuffles=2, instruction_ids=(0, 2))
    out = measure_mmlu.run_mmlu(lm, setups, cache=False, progress=False)
    assert out.attrs["letter_ids_shared"] and len(out.attrs["letter_ids"]) == 4
    ids = list(out.attrs["letter_ids"])
    with torch.no_grad():
        for row in out.head(3).itertuples():
            enc = torch.tensor([tokens.encode(lm.tokenizer, row.prompt)])
            logp = torch.log_softmax(lm.model(enc).logits[0, -1], -1)[ids].numpy()
            got = np.array([row.logprob_A, row.logprob_B, row.logprob_C, row.logprob_D])
            np.testing.assert_allclose(got, logp, atol=1e-4)
            assert row.prediction_index == int(np.argmax(logp))
    assert ((out["prediction_index"] == out["answer_index"]) == out["correct"]).all()
    assert out["prompt"].str.endswith("Answer:").all()
    summary = predictions.mmlu_model_summary(out)
    assert summary.loc["tiny-llama", "n_setups"] == 4 and 0 < summary.loc["tiny-llama", "letter_mass"] <= 1


def results_frame(acc_by_instruction, n=60, seed=0):
    """Synthetic MMLU results: instruction i answers a question right with probability acc_by_instruction[i]."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(3):
        for q in range(n):
            for i, p in enumerate(acc_by_instruction):
                rows.append(dict(model="m", role="base", question_id=f"q{q}", shuffle=s, instruction=i,
                                 correct=bool(rng.random() < p), letter_mass=1.0))
    return pd.DataFrame(rows)


def test_spread_null_and_interval():
    same = results_frame((0.25, 0.25, 0.25))
    identical = same[same["instruction"] == 0].copy()
    copies = pd.concat([identical.assign(instruction=i) for i in range(3)])
    null = predictions.spread_null(copies, n_permutations=200).iloc[0]
    assert null["spread"] == 0 and null["p_value"] == 1.0
    strong = results_frame((0.1, 0.5, 0.9), n=80)
    null = predictions.spread_null(strong, n_permutations=400).iloc[0]
    assert null["spread"] > 0.6 and null["p_value"] < 0.01 and null["null_mean"] < 0.2
    ci = predictions.spread_interval(strong, n_resamples=400).iloc[0]
    assert ci["low"] <= ci["estimate"] <= ci["high"] and ci["n"] == 80
    assert ci["estimate"] == pytest.approx(metrics.mmlu.mmlu_summary(strong)["spread"])


def test_sample_questions_total_and_balanced(monkeypatch):
    if not MIRROR.is_dir():
        pytest.skip("offline mirror not found")
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    q = measure_mmlu.sample_questions(None, 40, seed=0)
    assert len(q) == 40 and q["subject"].nunique() == 40 and q["question_id"].is_unique
    again = measure_mmlu.sample_questions(None, 40, seed=0)
    assert q["question_id"].tolist() == again["question_id"].tolist()
    q = measure_mmlu.sample_questions(["anatomy", "astronomy"], 5, seed=1)
    assert sorted(q.groupby("subject").size().tolist()) == [2, 3]


# ------------------------------------------------------------------------------------------ tables


def test_table2_layout():
    pararel = pd.DataFrame({"role": ["base", "instruction-tuned"], "accuracy": [0.1, 0.2], "consistency": [0.5, 0.6]},
                           index=pd.Index(["b", "t"], name="model"))
    mmlu_ = pd.DataFrame({"role": ["base", "instruction-tuned"], "accuracy": [0.25, 0.26], "spread": [0.02, 0.01]},
                         index=pd.Index(["b", "t"], name="model"))
    table = predictions.table2_layout(pararel, mmlu_)
    assert list(table.columns) == ["source", "model", "role", *paper.TABLE2_COLUMNS]
    assert table.set_index("model").loc["t", "PARAREL Cons."] == pytest.approx(60.0)


# ------------------------------------------------------------------------------------------ comparisons


def wide_frame():
    """:func:`pararel_wide`'s layout by hand: five relations, base b and tuned t."""
    relations = pd.Index([f"P{i}" for i in range(5)], name="relation")
    columns = pd.MultiIndex.from_product([["accuracy", "consistency"], ["b", "t"]], names=[None, "model"])
    values = np.array([[0.1, 0.2, 0.5, 0.7], [0.2, 0.2, 0.6, 0.9], [0.3, 0.4, 0.4, 0.4], [0.1, 0.3, 0.5, 0.3],
                       [0.2, 0.2, 0.6, 0.8]])
    return pd.DataFrame(values, index=relations, columns=columns)


def test_pararel_wide_comparison_and_wins():
    wide = predictions.pararel_wide(scores_frame())
    assert list(wide.index) == ["P1", "P2"]
    assert wide[("consistency", "b")].tolist() == pytest.approx([0.6, 0.7])
    assert wide[("consistency", "t")].tolist() == pytest.approx([0.8, 0.9])
    assert predictions.relation_wins(wide, "b", "t") == (2, 0)
    assert predictions.relation_wins(wide, "b", "t", "accuracy") == (0, 0)
    paired = predictions.pararel_comparison(wide, "b", ["b", "t"], n_resamples=50)
    assert list(paired.index) == [("t", "accuracy"), ("t", "consistency")]
    assert paired.index.names == ["model", "metric"]
    cons = paired.loc[("t", "consistency")]
    assert cons["n"] == 2 and cons["mean_diff"] == pytest.approx(0.2)
    assert cons["diff_low"] == pytest.approx(0.2) and cons["diff_high"] == pytest.approx(0.2)  # constant difference
    assert paired.loc[("t", "accuracy"), "mean_diff"] == 0 and paired.loc[("t", "accuracy"), "note"]
    wide = wide_frame()
    assert predictions.relation_wins(wide, "b", "t") == (3, 1)  # P2 is a tie
    assert predictions.relation_wins(wide, "b", "t", "accuracy") == (3, 0)


def test_pararel_intervals_one_row_per_model_and_metric():
    ci = predictions.pararel_intervals(wide_frame(), ["t", "b"], n_resamples=200)
    assert ci[["model", "metric"]].values.tolist() == [["t", "accuracy"], ["t", "consistency"],
                                                       ["b", "accuracy"], ["b", "consistency"]]
    est = ci.set_index(["model", "metric"])["estimate"]
    assert est[("b", "accuracy")] == pytest.approx(0.18) and est[("t", "consistency")] == pytest.approx(0.62)
    assert ((ci["low"] <= ci["estimate"]) & (ci["estimate"] <= ci["high"])).all() and (ci["n"] == 5).all()


def mmlu_results_two_models():
    base = results_frame((0.25, 0.25, 0.25), n=40, seed=1)
    tuned = results_frame((0.1, 0.5, 0.9), n=40, seed=2).assign(model="t", role="instruction-tuned")
    return pd.concat([base.assign(model="b"), tuned], ignore_index=True)


def test_mmlu_intervals_join_accuracy_spread_and_null():
    results = mmlu_results_two_models()
    table = predictions.mmlu_intervals(results, n_resamples=200, seed=3)
    assert list(table.index) == ["b", "t"] and table["role"].tolist() == ["base", "instruction-tuned"]
    summary = predictions.mmlu_model_summary(results)
    assert table["accuracy"].tolist() == pytest.approx((100 * summary["accuracy"]).tolist())
    assert table["spread"].tolist() == pytest.approx((100 * summary["spread"]).tolist())
    # the headline reading is never larger than the per-ordering one
    assert (table["spread"] <= table["spread_per_shuffle"] + 1e-9).all()
    spread = predictions.spread_interval(results, n_resamples=200, seed=3).set_index("model")
    null = predictions.spread_null(results, n_permutations=200, seed=3).set_index("model")
    assert table["spread_low"].tolist() == pytest.approx((100 * spread["low"]).tolist())
    assert table["null_q95"].tolist() == pytest.approx((100 * null["null_q95"]).tolist())
    assert table["p_value"].tolist() == null["p_value"].tolist()
    by_question = predictions.mmlu_by_question(results)
    acc = ifh_stats.bootstrap_ci(by_question.loc[by_question["model"] == "t", "accuracy"].to_numpy(), n_resamples=200,
                                 seed=3)
    assert table.loc["t", "acc_low"] == pytest.approx(100 * acc["low"]) and (table["n_questions"] == 40).all()
    assert table.loc["t", "p_value"] < 0.05  # the tuned model's instructions differ


def test_chance_and_null_rules():
    table = pd.DataFrame({"acc_low": [20.0, 24.0], "acc_high": [30.0, 25.0], "p_value": [0.5, 0.06]},
                         index=["b", "t"])
    assert predictions.all_at_chance(table) and predictions.spreads_within_null(table)
    assert not predictions.all_at_chance(table.assign(acc_high=[30.0, 24.9]))
    assert not predictions.spreads_within_null(table.assign(p_value=[0.5, 0.05]))
    assert predictions.all_at_chance(table.assign(acc_low=[60.0, 55.0], acc_high=[70.0, 65.0]), chance=66) is False


def test_comparison_title_reads_the_verdict():
    assert predictions.comparison_title("t", "b", 3.0, 1.0, 5.0, "consistent") == "t is more consistent than b (+3.0 points)"
    assert predictions.comparison_title("t", "b", -3.0, -5.0, -1.0, "accurate") == "t is less accurate than b (-3.0 points)"
    assert (predictions.comparison_title("t", "b", 1.0, -1.0, 3.0, "consistent")
            == "t and b are about equally consistent (+1.0 points, interval spans 0)")


def test_plot_points_from_long_and_wide_tables():
    ci = pd.DataFrame({"model": ["b", "b", "t", "t"], "metric": ["accuracy", "consistency"] * 2,
                       "estimate": [0.1, 0.5, 0.2, 0.6], "low": [0.0, 0.4, 0.1, 0.5], "high": [0.2, 0.6, 0.3, 0.7]})
    roles = {"b": "base", "t": "instruction-tuned"}
    points = predictions.plot_points(ci, roles, metric="consistency", scale=100)
    assert list(points.columns) == ["model", "role", "estimate", "low", "high"]
    assert points.values.tolist() == [["b", "base", 50.0, 40.0, 60.0], ["t", "instruction-tuned", 60.0, 50.0, 70.0]]
    table = pd.DataFrame({"spread": [8.0, 4.0], "spread_low": [1.0, 0.0], "spread_high": [20.0, 9.0]}, index=["b", "t"])
    points = predictions.plot_points(table, roles, "spread", "spread_low", "spread_high")
    assert points.values.tolist() == [["b", "base", 8.0, 1.0, 20.0], ["t", "instruction-tuned", 4.0, 0.0, 9.0]]


def test_paper_predictions_are_tables_2_and_5():
    rows = predictions.paper_predictions()
    assert len(rows) == len(paper.predictions_table(2)) + len(paper.predictions_table(5))
    llama = rows.set_index("model").loc["llama-7b (base model)"]
    assert llama["role"] == "base" and llama["PARAREL Cons."] == pytest.approx(81.9)
    assert llama["MMLU Spread"] == pytest.approx(1.6)


# ------------------------------------------------------------------------------------------ findings and headlines


def paired_row(diff, low, high, p=0.5):
    return {"mean_diff": diff, "diff_low": low, "diff_high": high, "wilcoxon_p": p}


def headline_inputs(cons=(-0.072, -0.127, 0.016), spread_t=(16.7, 0.0, 50.4)):
    pararel_paired = pd.DataFrame([paired_row(-0.009, -0.028, 0.0, 1.0), paired_row(*cons)],
                                  index=pd.MultiIndex.from_tuples([("t", "accuracy"), ("t", "consistency")],
                                                                  names=["model", "metric"]))
    pararel_summary = pd.DataFrame({"accuracy": [0.046, 0.037], "consistency": [0.588, 0.516],
                                    "accuracy_micro": [0.05, 0.04]}, index=["b", "t"])
    footnote4 = pd.DataFrame({"threshold": [0.042], "beyond_threshold": [True]}, index=["t"])
    mmlu_table = pd.DataFrame({"accuracy": [13.9, 52.8], "spread": [8.3, spread_t[0]], "spread_low": [0.0, spread_t[1]],
                               "spread_high": [25.0, spread_t[2]], "null_mean": [8.3, 16.7], "p_value": [1.0, 1.0],
                               "spread_per_shuffle": [9.0, 17.0]}, index=["b", "t"])
    mmlu_paired = pd.DataFrame([paired_row(0.389, -0.073, 0.802)], index=pd.Index(["t"], name="model"))
    return pararel_paired, pararel_summary, footnote4, mmlu_table, mmlu_paired


def test_headlines_rows_at_chance():
    rows = predictions.headlines(*headline_inputs(), "b", True, True, 3, 6)
    assert [r["result"] for r in rows] == [
        "ParaRel consistency, tuned − base (points)", "ParaRel accuracy, tuned − base (points)",
        "MMLU accuracy, tuned − base (points)",
        "MMLU accuracy spread across instructions (points; lower = more robust)"]
    assert [r["direction_holds"] for r in rows] == ["n.s. (opposite sign)", "not defined", "n.s. (same sign)",
                                                    "not testable"]
    cons, acc, mmlu_acc, spread = rows
    assert cons["ours"] == "-7.2 [-12.7, +1.6] (base 58.8%, tuned 51.6%)"
    assert cons["estimate"] == pytest.approx(-7.2) and cons["high"] == pytest.approx(1.6)
    assert cons["note"] == ("3 relations; paired bootstrap over relations; Wilcoxon p = 0.5; footnote 4's threshold "
                            "(base sd over prompts) 4.2 points: beyond it")
    both = predictions.paper_predictions()
    assert cons["paper"] == paper.direction_text(both, "PARAREL Cons.", threshold=1.4)
    assert cons["paper"].startswith("LLaMA-7b 81.9; 10 tuned 80.5-84.8, 8 higher (6 by > 1.4, fn. 4)")
    assert acc["note"].endswith("the paper claims no direction for ParaRel accuracy")
    assert mmlu_acc["ours"] == "+38.9 [-7.3, +80.2] (base 13.9%, tuned 52.8%)"
    assert mmlu_acc["note"] == ("6 questions × 9 setups; paired bootstrap over questions; both models at chance: "
                                "every accuracy interval contains 25%")
    assert spread["ours"] == "base 8.3 [0.0, 25.0], tuned 16.7 [0.0, 50.4]; no-effect null 8.3 / 16.7"
    assert spread["estimate"] == pytest.approx(8.4) and np.isnan(spread["low"])
    assert spread["note"].startswith("both models at chance: every accuracy interval contains 25%, so a spread is "
                                     "noise; both spreads within the permutation null")
    assert "permutation p = 1.00 (base), 1.00 (tuned); spread = max − min over instructions" in spread["note"]
    assert spread["note"].endswith("averaged: base 9.0, tuned 17.0)")
    assert all(r["base"] == "b" and r["tuned"] == "t" for r in rows)


@pytest.mark.parametrize(("spread_t", "expected"), [
    ((1.0, 0.0, 2.0), "yes"),                 # the tuned interval lies below the base's [0, 25]
    ((30.0, 26.0, 40.0), "no"),               # above it
    ((5.0, 1.0, 9.0), "n.s. (same sign)"),    # overlapping, tuned lower
    ((12.0, 1.0, 30.0), "n.s. (opposite sign)"),
])
def test_headlines_spread_compares_the_intervals(spread_t, expected):
    inputs = list(headline_inputs(spread_t=spread_t))
    inputs[3].loc["b", ["spread", "spread_low", "spread_high"]] = [8.3, 3.0, 25.0]
    rows = predictions.headlines(*inputs, "b", False, False, 3, 6)
    assert rows[-1]["direction_holds"] == expected
    assert rows[-1]["note"].startswith("compared by the two spreads' bootstrap intervals")
    assert rows[2]["note"].endswith("not every model at chance")


def test_headlines_give_mmlu_rows_for_every_tuned_model():
    """Each tuned model's MMLU accuracy and spread against the base model (the paper's design: one base, several
    tunings), not only the first's; mmlu_comparison pairs each with the base over questions."""
    by_question = pd.DataFrame({"model": ["b"] * 4 + ["t"] * 4 + ["u"] * 4, "question_id": list(range(4)) * 3,
                                "accuracy": [0, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0]})
    paired = predictions.mmlu_comparison(by_question, "b", ["b", "t", "u"], n_resamples=200, seed=0)
    assert list(paired.index) == ["t", "u"]
    assert paired.loc["t", "mean_diff"] == pytest.approx(0.5) and paired.loc["u", "mean_diff"] == pytest.approx(-0.25)
    inputs = list(headline_inputs())
    inputs[3] = pd.concat([inputs[3], inputs[3].loc[["t"]].rename(index={"t": "u"}).assign(accuracy=20.0)])
    inputs[4] = paired
    inputs[0] = pd.concat([inputs[0], inputs[0].rename(index={"t": "u"}, level="model")])
    inputs[1] = pd.concat([inputs[1], inputs[1].loc[["t"]].rename(index={"t": "u"})])
    inputs[2] = pd.concat([inputs[2], inputs[2].rename(index={"t": "u"})])
    rows = predictions.headlines(*inputs, "b", True, True, 3, 4)
    mmlu = [r for r in rows if r["result"] == "MMLU accuracy, tuned − base (points)"]
    spread = [r for r in rows if r["result"].startswith("MMLU accuracy spread")]
    assert [r["tuned"] for r in mmlu] == [r["tuned"] for r in spread] == ["t", "u"]
    assert mmlu[1]["estimate"] == pytest.approx(-25.0) and mmlu[1]["ours"].endswith("(base 13.9%, tuned 20.0%)")
    assert mmlu[0]["note"].endswith("all 3 models at chance: every accuracy interval contains 25%")


def test_headlines_consistency_within_the_threshold():
    inputs = list(headline_inputs(cons=(0.03, 0.01, 0.05)))
    inputs[2] = inputs[2].assign(beyond_threshold=False)
    (cons, *_) = predictions.headlines(*inputs, "b", True, True, 3, 6)
    assert cons["direction_holds"] == "yes" and cons["note"].endswith("4.2 points: within it")


def test_summary_lines_state_the_direction():
    pararel_paired, _, footnote4, _, _ = headline_inputs()
    restricted = pd.Series(paired_row(0.02, -0.01, 0.05))
    text = predictions.summary_lines(pararel_paired, footnote4, restricted, "b", "t", True, True, "")
    lines = text.split("\n")
    assert lines[0] == ("- **ParaRel consistency**: t − b = -7.2 points (interval -12.7 to +1.6); footnote 4's "
                        "threshold 4.2 points: beyond it.")
    assert lines[1] == ("- **ParaRel restricted to the relation's objects** (top-10 lower bound): t − b = +2.0 points "
                        "(interval -1.0 to +5.0).")
    assert lines[2].endswith("here the unrestricted difference is not distinguishable from zero.")
    assert lines[3] == "- **MMLU**: no model distinguishable from chance; spreads within the no-effect null."
    assert lines[4] == "- Same family: the comparison isolates instruction tuning."
    up = pararel_paired.copy()
    up.loc[("t", "consistency"), ["mean_diff", "diff_low", "diff_high"]] = [0.03, 0.01, 0.05]
    text = predictions.summary_lines(up, footnote4, restricted, "b", "t", False, False, "Caution: families differ.")
    assert "is in the same direction." in text and text.endswith("- Caution: families differ.")
    assert "not all models at chance; spreads not all within" in text
    down = pararel_paired.copy()
    down.loc[("t", "consistency"), ["mean_diff", "diff_low", "diff_high"]] = [-0.03, -0.05, -0.01]
    assert "is in the opposite direction." in predictions.summary_lines(down, footnote4, restricted, "b", "t", 1, 1)
