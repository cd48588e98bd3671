"""Every number the paper reports (Fierro, Li, Søgaard 2024), and every reading of its tables.

These are *the paper's* values, typed from the paper and kept apart from anything we compute: every
table or figure that shows them labels them as the paper's. The tables live in ``paper_tables/``
beside this file, one CSV per table (``table1.csv``, ``table2.csv``, ...), each with a ``model``
column and the paper's column names; the findings the paper states only in its prose are
:data:`FINDINGS`. This module is the one place that parses them: which printed row is a base model
(:func:`role_of`), which family it belongs to (:func:`family_of`), and the long forms the chapters
compare with. Pure pandas: nothing here computes one of our numbers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TABLES_DIR = Path(__file__).with_name("paper_tables")
SOURCE_LABEL = "paper (Fierro et al. 2024)"

#: Depth of LLaMA-7b, the model whose layers the paper's prose names.
N_LAYERS = 32
#: The paper's findings stated in its prose (not in a table). Layers are LLaMA-7b's; see :func:`layer_span`.
FINDINGS = {
    "relation_layers": (3, 8),          # §4 "Relations": the bigger drop for different relations
    "attribute_rate_peak": 0.30,        # §4 footnote 5: "peaks at ≈30%"
    "attribute_decrease_after": 25,     # §4 footnote 5: "the rate decreases after layer 25"
    "attributes_per_subject": (1936, 1036),  # App. D: 1,936 ± 1,036 attributes per subject
    "n_subjects": 27341,                # App. D
    "extraction_layers": (13, 21),      # §4: significant correlations in layers 13-21 (Table 7)
    "base_consistency_sd": 1.4,         # §3 footnote 4: sd of LLaMA's ParaRel consistency over prompts
    "n_tuned_models": 10,
    "becel_learning_rates": {"snli": 5e-5, "rte": 1e-4, "mrpc": 1e-4, "wic": 1e-4},  # App. C.2: the best per task
}

#: Every equation, table and figure of the paper that the book computes, with what it is. Exactly one
#: function of the package carries each of these in a ``paper:`` line of its docstring (the appendix
#: "Where each equation lives" is generated from them, and a test checks that each has one home).
QUANTITIES = {
    "eq. 1": "the residual stream as a sum of updates, h^(l+1) = h^l + a^l (MHSA) + f^l (MLP), §4",
    "eq. 2": "cos(p): the mean cosine of the members of one paraphrase set, App. B.1",
    "eq. 3": "cos(paraph.): the macro average of cos(p) over the paraphrase sets, App. B.1",
    "eq. 4": "cos(¬paraph.): the mean cosine of K random non-paraphrase pairs, App. B.1",
    "eq. 4 pairs": "the random non-paraphrase pairs of eq. 4: two different sets, one member of each",
    "Table 1": "the gap cos(paraph.) − cos(¬paraph.) of LLaMA-7b and its tuned models, §2",
    "Table 4": "the same gap for T5-XL / Flan-T5-XL and Falcon-7b / Falcon-7b-instruct, App. B",
    "Fig. 4": "the gap per layer, for paraphrases whose predictions agree (consistent) or not, §4",
    "Fig. 6-7": "mean cosine of the paraphrase pairs in each group (consistent / inconsistent), App. E",
    "Table 3": "the prompts that put a text before the model, App. B.2",
    "§3 ParaRel pairs": "the pairs of paraphrased queries of one fact, consistent when their top-1 predictions agree",
    "Table 2 ParaRel": "ParaRel accuracy and consistency of one relation (Elazar et al. 2021), §3",
    "Table 2 ParaRel macro": "ParaRel accuracy and consistency averaged over relations, §3",
    "footnote 4": "the standard deviation of ParaRel consistency over the three prompts, and the rule it sets",
    "App. C.1": "the zero-shot MMLU prompt (instruction, question, options, answer cue)",
    "§3 MMLU prediction": "the predicted option: the answer letter with the highest log-probability",
    "Table 2 MMLU": "MMLU accuracy and its spread (max − min) across the three instructions, §3, footnote 3",
    "Table 6 Acc.": "BECEL accuracy of a fine-tuned classifier, App. C.2",
    "Table 6 Sym/Sem/Neg": "BECEL symmetric, semantic and negational consistency (1 − τ), App. C.2",
    "App. D": "the attribute set A_s of a subject, from its Wikipedia snippets",
    "Fig. 2": "the subject attribute rate of the top tokens of the logit lens, §4",
    "Fig. 3": "the cosine of query pairs of the same or of different relations per layer, §4",
    "Fig. 5, 8": "the extraction rate of MHSA (Fig. 5) and MLP (Fig. 8) updates per layer, §4",
    "Table 7": "the Pearson correlation of extraction rate and ParaRel consistency across tuned models, App. F",
    # Not the paper's: the measures of chapter 6, from the work that followed it.
    "beyond: PromptEval quantiles": "not the paper's: quantiles of accuracy over many prompts (Polo et al. 2024)",
    "beyond: MaxP, AvgP, CPS": "not the paper's: best and mean accuracy over prompts, and their combination "
                               "(Mizrahi et al. 2024)",
    "beyond: consistency rate": "not the paper's: pairwise agreement of the chosen option across prompts and "
                                "option orders",
    "beyond: ProSA PSS": "not the paper's: mean absolute per-item score difference between prompts (Zhuo et al. 2024)",
    "beyond: ParaRel variants": "not the paper's: ParaRel consistency as ParaRel's probe and later code report it "
                                "(per fact, a/an filter, consistent subjects, known facts)",
    "beyond: POSIX": "not the paper's: change of a response's length-normalised log-likelihood when its prompt "
                     "is swapped for an equivalent one (Chatterjee et al. 2024)",
    "beyond: POSIX, released code": "not the paper's: POSIX as its authors' released code computes it (the prompt "
                                    "held fixed and the response swapped, over the generation limit)",
    "beyond: answer matching": "not the paper's: the option a generated response names (scoring by generation "
                               "instead of letter log-likelihood)",
}

#: The three model families of the paper and how its prose names their base models.
FAMILIES = {"llama": "LLaMA-7b", "t5": "T5-XL", "falcon": "Falcon-7b"}
#: Table 1 / Table 4 column of each dataset of the vector-space chapter.
GAP_COLUMNS = {"mrpc": "MRPC", "tapaco": "TAPACO", "pararel": "PARAREL"}
#: Table 2 / Table 5 columns of the predictions chapter.
TABLE2_COLUMNS = ("MMLU Acc.", "MMLU Spread", "PARAREL Acc.", "PARAREL Cons.")
#: Table 6's measure abbreviations, and its tasks in print order.
TABLE6_NAMES = {"symmetric": "Sym", "semantic": "Sem", "negational": "Neg", "accuracy": "Acc."}
TABLE6_TASKS = {"snli": "SNLI", "rte": "RTE", "mrpc": "MRPC", "wic": "WiC"}

#: Printed row labels whose role is not what "(base model)" says. Table 6 prints "FlanT5-XL (base
#: model)", but its numbers average to Table 5's FlanT5-XL row (accuracy 81.3): the instruction-tuned
#: model, mislabelled by the paper.
ROLE_CORRECTIONS = {"FlanT5-XL (base model)": "instruction-tuned"}
#: Table 6 row labels -> registry names.
REGISTRY_NAMES = {"llama-7b (base model)": "llama-7b", "FlanT5-XL (base model)": "flan-t5-xl",
                  "t5-xl-lm-adapt": "t5-xl-lm-adapt", "Falcon-7b": "falcon-7b", "Falcon-7b-instruct": "falcon-7b-instruct"}
#: Table 6 rows that are base models without the "(base model)" mark.
_UNMARKED_BASES = {"t5-xl-lm-adapt", "Falcon-7b"}


def role_of(model: str) -> str:
    """The role of a row the paper prints: "base" where it says "(base model)" (or is an unmarked base
    of Table 6), else "instruction-tuned"; :data:`ROLE_CORRECTIONS` fixes the paper's one mislabel."""
    if model in ROLE_CORRECTIONS:
        return ROLE_CORRECTIONS[model]
    return "base" if "(base model)" in model or model in _UNMARKED_BASES else "instruction-tuned"


def family_of(model: str) -> str:
    """``"t5"``, ``"falcon"`` or ``"llama"`` for a row the paper prints."""
    lower = model.lower()
    return "t5" if "t5" in lower else "falcon" if "falcon" in lower else "llama"


def short_name(model: str) -> str:
    """A printed row label without "(base model)", with LLaMA-7b spelled as the prose spells it."""
    name = model.replace(" (base model)", "")
    return FAMILIES["llama"] if name == "llama-7b" else name


def layer_span(first: int, last: int, kind: str = "state", n_layers: int = N_LAYERS) -> tuple[float, float]:
    """The relative depth of the paper's layers ``first``-``last`` (LLaMA-7b's), for models of any depth.

    ``kind="state"`` reads them as residual states h^l (depth l / L); ``"update"`` as the updates of
    block l, which write h^(l+1) (depth (l + 1) / L)."""
    shift = 1 if kind == "update" else 0
    return (first + shift) / n_layers, (last + shift) / n_layers


def table(name: str | int) -> pd.DataFrame:
    """The paper's table ``name`` (e.g. ``1`` or ``"table1"``), with a ``source`` column saying so.

    Tables of models (1, 2, 4, 5, 6) also get ``role`` (:func:`role_of`) and ``family`` (:func:`family_of`).
    """
    stem = f"table{name}" if isinstance(name, int) or str(name).isdigit() else str(name)
    path = TABLES_DIR / f"{stem}.csv"
    if not path.exists():
        known = sorted(p.stem for p in TABLES_DIR.glob("*.csv"))
        raise FileNotFoundError(f"No transcription of the paper's {stem} at {path}; available: {known}")
    frame = pd.read_csv(path)
    frame.insert(0, "source", SOURCE_LABEL)
    if stem != "table7":
        frame.insert(2, "role", frame["model"].map(role_of))
        frame.insert(3, "family", frame["model"].map(family_of))
    return frame


# --------------------------------------------------------------------------------------------------
# Long forms the chapters compare with


def gaps() -> pd.DataFrame:
    """Tables 1 and 4 (the paraphrase gap, §2), long: ``source``, ``table``, ``model`` (as printed),
    ``role``, ``family``, ``dataset``, ``gap``."""
    frames = []
    for number in (1, 4):
        wide = table(number)
        long = wide.melt(id_vars=["source", "model", "role", "family"], value_vars=list(GAP_COLUMNS.values()),
                         var_name="column", value_name="gap")
        long["table"] = f"Table {number}"
        frames.append(long)
    out = pd.concat(frames, ignore_index=True)
    out["dataset"] = out["column"].map({v: k for k, v in GAP_COLUMNS.items()})
    return out[["source", "table", "model", "role", "family", "dataset", "gap"]]


def gap_directions(gap_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per family and dataset of Tables 1 and 4: the base gap, the IFT gaps, and how many IFT models
    exceed the base. Columns ``source``, ``family``, ``dataset``, ``base_gap``, ``tuned_mean``,
    ``tuned_min``, ``tuned_max``, ``n_tuned``, ``n_tuned_above`` (strictly bigger), ``n_tuned_equal``."""
    gap_table = gaps() if gap_table is None else gap_table
    rows = []
    for (family, dataset), group in gap_table.groupby(["family", "dataset"], sort=False):
        base = group.loc[group["role"] == "base", "gap"]
        tuned = group.loc[group["role"] == "instruction-tuned", "gap"]
        if len(base) != 1 or tuned.empty:
            continue
        b = float(base.iloc[0])
        rows.append({"source": group["source"].iloc[0], "family": FAMILIES[family], "dataset": dataset,
                     "base_gap": b, "tuned_mean": float(tuned.mean()), "tuned_min": float(tuned.min()),
                     "tuned_max": float(tuned.max()), "n_tuned": len(tuned),
                     "n_tuned_above": int((tuned > b).sum()), "n_tuned_equal": int((tuned == b).sum())})
    return pd.DataFrame(rows)


def predictions_table(number: int = 2) -> pd.DataFrame:
    """Table 2 or 5 (MMLU and ParaRel columns): ``source``, ``model``, ``role`` and :data:`TABLE2_COLUMNS`."""
    frame = table(number)
    return frame[["source", "model", "role", *[c for c in TABLE2_COLUMNS if c in frame.columns]]]


def becel_table6() -> pd.DataFrame:
    """Table 6 (BECEL per task) long: ``source``, ``model`` (as printed), ``registry_name``, ``role``,
    ``family``, ``task``, ``metric`` (symmetric / semantic / negational / accuracy), ``value``."""
    wide = table(6)
    rows = []
    for _, r in wide.iterrows():
        for task, label in TABLE6_TASKS.items():
            for metric, short in TABLE6_NAMES.items():
                rows.append({"source": r["source"], "model": r["model"],
                             "registry_name": REGISTRY_NAMES.get(r["model"], r["model"]), "role": r["role"],
                             "family": r["family"], "task": task, "metric": metric,
                             "value": float(r[f"{label} {short}"])})
    return pd.DataFrame(rows)


def becel_table6_averages() -> pd.DataFrame:
    """Table 2's BECEL columns recomputed as Table 6 averaged over its four tasks (×100), LLaMA rows only;
    they agree with the printed Table 2 within 0.1. Labelled ``source = "paper Table 6, averaged over tasks"``."""
    long = becel_table6()
    long = long[(long["family"] == "llama") & long["metric"].isin(["accuracy", "semantic", "negational"])]
    out = long.groupby(["model", "registry_name", "role", "metric"], sort=False)["value"].mean().mul(100).reset_index()
    out.insert(0, "source", "paper Table 6, averaged over tasks")
    return out


def becel_table2(number: int = 2) -> pd.DataFrame:
    """Table 2's (or 5's) BECEL columns long: ``source``, ``model``, ``role``, ``family``, ``metric``
    (accuracy / semantic / negational), ``value`` (×100, as printed; "Cons." is printed "semantic / negation")."""
    wide = table(number)
    rows = []
    for _, r in wide.iterrows():
        sem, neg = (float(x) for x in str(r["BECEL Cons."]).split("/"))
        for metric, value in (("accuracy", float(r["BECEL Acc."])), ("semantic", sem), ("negational", neg)):
            rows.append({"source": f"{r['source']}, Table {number}", "model": r["model"], "role": r["role"],
                         "family": r["family"], "metric": metric, "value": value})
    return pd.DataFrame(rows)


def direction_text(frame: pd.DataFrame, value: str, higher: bool = True, spec: str = ".1f",
                   threshold: float | None = None) -> str:
    """The paper's numbers for one column, per family: "LLaMA-7b 81.9; 10 tuned 80.5-84.8, 8 higher"
    (and "T5-XL 75.5 → FlanT5-XL 80.1" for a family with one tuned model).

    ``frame`` has ``model``, ``role`` and ``value``; ``higher`` says which way the paper's claim goes;
    ``threshold`` adds how many differ by more than it (footnote 4)."""
    parts = []
    for _, group in frame.groupby(frame["model"].map(family_of), sort=False):
        base = group[group["role"] == "base"]
        tuned = group[group["role"] == "instruction-tuned"]
        if len(base) != 1 or tuned.empty:
            continue
        b = float(base[value].iloc[0])
        t = tuned[value].astype(float)
        word = "higher" if higher else "lower"
        n_way = int((t > b).sum() if higher else (t < b).sum())
        if len(t) == 1:
            parts.append(f"{short_name(base['model'].iloc[0])} {b:{spec}} → {tuned['model'].iloc[0]} {t.iloc[0]:{spec}}")
            continue
        text = (f"{short_name(base['model'].iloc[0])} {b:{spec}}; {len(t)} tuned {t.min():{spec}}-{t.max():{spec}}, "
                f"{n_way} {word}")
        if threshold is not None:
            beyond = int(((t - b) > threshold).sum() if higher else ((b - t) > threshold).sum())
            text += f" ({beyond} by > {threshold:g}, fn. 4)"
        parts.append(text)
    return "; ".join(parts)
