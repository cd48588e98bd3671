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

#: Models get fixed colours (:func:`ifhelpers.book.model_colors`): blues for base models, warm colours for tuned ones.
BASE_SHADES = sns.color_palette("Blues_d", 6).as_hex()
TUNED_SHADES = sns.color_palette("Oranges_d", 6).as_hex() + sns.color_palette("Reds_d", 6).as_hex()


def setup() -> None:
    """The book's plotting defaults (call once per notebook)."""
    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.dpi": 110, "savefig.bbox": "tight", "axes.titleweight": "bold"})
