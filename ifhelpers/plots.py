"""Figure conventions shared by every chapter (seaborn).

One colour per role (base vs instruction-tuned), the same model in the same colour in every chapter,
intervals wherever a number is estimated, and the paper's values drawn as hollow black markers
labelled "paper". Chapter-specific figures live in the chapter's module and use these helpers.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns

ROLE_COLORS = {"base": "#4C72B0", "instruction-tuned": "#DD8452"}
PAPER_STYLE = dict(marker="D", facecolor="none", edgecolor="black", s=40, linewidths=1.2, zorder=5, label="paper")

# Models of the registry get fixed colours: blues for base models, warm colours for tuned ones.
_BASE_SHADES = sns.color_palette("Blues_d", 6).as_hex()
_TUNED_SHADES = sns.color_palette("Oranges_d", 6).as_hex() + sns.color_palette("Reds_d", 6).as_hex()


def setup() -> None:
    """The book's plotting defaults (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})


def model_colors(models: list[str], roles: dict[str, str]) -> dict[str, str]:
    """A stable colour per model: base models in blues, instruction-tuned ones in oranges/reds.

    A registry model's colour is fixed by its rank among the registry's models of its role (registry
    order), so it is the same in every chapter and in every list it appears in; other models (Hub ids,
    local folders) take the shades after the registry's, in the order given.
    """
    from ifhelpers.model import registry

    listed = registry.models()
    rank = {role: [name for name, spec in listed.items() if spec.role == role] for role in ("base", "instruction-tuned")}
    colors, extra = {}, {"base": 0, "instruction-tuned": 0}
    for name in models:
        role = roles[name]
        shades = _BASE_SHADES if role == "base" else _TUNED_SHADES
        if name in rank[role]:
            index = rank[role].index(name)
        else:
            index = len(rank[role]) + extra[role]
            extra[role] += 1
        colors[name] = shades[index % len(shades)]
    return colors
