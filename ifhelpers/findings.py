"""How a finding is written down: one headline row per result of the paper.

Every chapter module builds its headlines with :func:`row` (the paper's section and result, the
paper's number as text, ours as text and as numbers, and whether the paper's direction holds),
:func:`diff_text` (a difference with its interval) and :func:`combine` (one word for several cells);
:func:`ifhelpers.results.save_headlines` writes them and the reproduction summary gathers them.
``direction_holds`` takes the words of :data:`DIRECTION_VALUES`, from :func:`ifhelpers.stats.verdict`.
"""

from __future__ import annotations

import numpy as np

from ifhelpers import design

NAN = float("nan")

#: Columns of a chapter's headline table, in order (see :func:`save_headlines`).
HEADLINE_COLUMNS = ["chapter", "paper_section", "result", "paper", "ours", "estimate", "low", "high", "mde",
                    "direction_holds", "base", "tuned", "note", "elapsed_s", "executed_at", "cache", "cpus"]
#: What ``direction_holds`` may say. "yes" / "no": our 95% interval excludes zero on the paper's /
#: the other side; "n.s.": it contains zero (with the sign of the point estimate, when it has one);
#: "mixed": some cells go each way; "not defined": the paper claims no direction, or the quantity
#: does not exist for these models (a correlation over one tuned model); "not testable": it exists
#: but cannot speak to the claim (models at chance).
DIRECTION_VALUES = ("yes", "no", "n.s. (same sign)", "n.s. (opposite sign)", "n.s.", "mixed", "not defined",
                    "not testable")



def combine(verdicts: list[str]) -> str:
    """One word for several cells: "yes" / "no" when every significant cell goes one way (and at least
    one is significant), "mixed" when they go both ways, else "n.s." with the majority sign."""
    verdicts = [v for v in verdicts if v != "not defined"]
    if not verdicts:
        return "not defined"
    yes, no = verdicts.count("yes"), verdicts.count("no")
    if yes and no:
        return "mixed"
    if yes or no:
        return "yes" if yes else "no"
    same = sum(v == "n.s. (same sign)" for v in verdicts)
    return "n.s. (same sign)" if same > len(verdicts) / 2 else "n.s. (opposite sign)"


def diff_text(diff: float, low: float, high: float, spec: str = "+.3f", unit: str = "") -> str:
    """``+0.012 [-0.003, +0.027]`` (a difference with its 95% interval)."""
    if diff is None or not np.isfinite(diff):
        return "n/a"
    return f"{diff:{spec}}{unit} [{low:{spec}}, {high:{spec}}]"


def row(section: str, result: str, paper: str, ours: str, direction_holds: str, *, estimate: float = NAN,
        low: float = NAN, high: float = NAN, mde: float | None = None, base: str = "", tuned: str = "",
        note: str = "") -> dict:
    """One headline: the paper's section and result, the paper's number or direction (text), ours
    (text, and ``estimate``/``low``/``high`` as numbers: tuned − base where that is defined).

    ``mde`` is the minimum detectable effect of the comparison, in the unit of ``estimate``: the smallest true
    difference the design would find with 80% power in a two-sided test at level 0.05
    (:func:`ifhelpers.design.minimum_detectable_effect`). A chapter that models its design's noise gives it
    (chapter 5: seeds and units); otherwise it is read from the 95% interval (``low``, ``high``) by
    :func:`ifhelpers.design.se_from_interval`, a lower bound for models trained once (no seed noise in the
    interval); NaN without an interval. The summary's forest plot marks it at ±``mde``."""
    if mde is None:
        mde = design.minimum_detectable_effect(design.se_from_interval(low, high))
    return {"paper_section": section, "result": result, "paper": paper, "ours": ours,
            "estimate": float(estimate), "low": float(low), "high": float(high), "mde": float(mde),
            "direction_holds": direction_holds, "base": base, "tuned": tuned, "note": note}
