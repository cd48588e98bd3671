"""The book as a reader sees it: build it at smoke sizes, open pages in headless Chromium.

The chapters are copied to a temporary folder, their parameters set to the smoke sizes of
``notebooks/smoke.yaml`` (papermill's parameter injection), and the book is built with warnings as
errors, in the background from the session's first test on (``conftest.smoke_book``; these tests run
last). Then the index and every chapter are opened in Chromium (Debian's ``chromium`` through
Playwright): every figure must load (natural width > 0), no page may show an error cell, no page
may request anything off the machine (MathJax is the vendored copy in ``book/_static/mathjax``),
every formula must be typeset by MathJax, and a screenshot of each page is kept under
``_build/screenshots`` for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")  # what a page may load without a network
MATH_CHAPTER = "01_vector_space"  # a chapter with inline and display math
GOLDEN = REPO / "tests" / "golden"  # the smoke-size headlines every change is compared with
VOLATILE = ["elapsed_s", "executed_at", "cache", "cpus"]  # what a run may change: its time and cache state
NUMERIC = ["estimate", "low", "high", "mde"]
#: The registry pair the smoke book reads wherever a chapter's default compares a base with tuned models: the
#: cross-family pocket pair, which needs no training. The default's tuned Gemma (270 Alpaca examples) trains for
#: about 5 minutes; its path (tuned on two datasets, stored, loaded, run) is tests/test_tuning_datasets.py's.
SMOKE_PAIR = "pocket"


def smoke_sources(target: Path) -> list[str]:
    """A copy of the book sources under ``target`` with every chapter set to its smoke sizes."""
    import jupytext
    from papermill.parameterize import parameterize_notebook

    from ifhelpers.cli import notebook_parameters, parse_models

    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "book", target / "book")
    (target / "notebooks").mkdir()
    smoke = yaml.safe_load((REPO / "notebooks" / "smoke.yaml").read_text()) or {}
    chapters = []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md")):
        notebook = jupytext.read(path)
        notebook.metadata.setdefault("papermill", {})  # papermill expects what its own runs leave
        for cell in notebook.cells:
            cell.metadata.setdefault("tags", [])
        models = {"models": parse_models(f"pair={SMOKE_PAIR}")[0]} if len(notebook_parameters(path).get("models", [])) > 1 \
            else {}
        notebook = parameterize_notebook(notebook, {**models, **smoke.get(path.stem, {})})
        jupytext.write(notebook, target / "notebooks" / f"{path.stem}.ipynb")
        chapters.append(path.stem)
    shutil.copy(REPO / "notebooks" / "summary.md", target / "notebooks")  # gathers the chapters' headlines
    return chapters


def start_build(root: Path) -> tuple[list[str], subprocess.Popen]:
    """Start building the smoke-size book under ``root`` (:func:`smoke_sources`) in the background, its output
    in ``root/build.log``: (its chapters, the build's process). ``conftest.smoke_book`` starts it with the
    session, so that the other tests run while it builds; :func:`built_book` waits for it."""
    chapters = smoke_sources(root)
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # notebooks plot inline
    jb = Path(sys.executable).with_name("jupyter-book")
    with open(root / "build.log", "w") as log:
        process = subprocess.Popen([str(jb), "build", str(root), "-W"], stdout=log, stderr=subprocess.STDOUT,
                                   text=True, env=env, cwd=root, start_new_session=True)
    return chapters, process


@pytest.fixture(scope="module")
def built_book(smoke_book):
    if isinstance(smoke_book, BaseException):
        pytest.fail(f"the smoke book could not start building: {smoke_book!r}")
    root, chapters, process = smoke_book
    if process.wait() != 0:
        pytest.fail(f"jupyter-book build failed:\n{(root / 'build.log').read_text()[-9000:]}")
    return root / "_build" / "html", chapters


# A decimal as a headline prints it; integers in the text (counts: "6 questions") are compared exactly.
DECIMAL = re.compile(r"[+-]?\d+\.\d+")
# How far fp32 kernels of two CPUs may move a smoke-size number, as a share of its row's scale (the larger of
# the golden value and its interval's width). Seen: the smoke book on a 2-core Xeon with AVX-512 against the
# same machine held to AVX2 and 1 thread (ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS, OMP_NUM_THREADS)
# moved no number by more than 1.2e-5; two CI machines differed by up to 2e-4 (a POSIX estimate). A change
# of method moves numbers by far more.
RTOL_ACROSS_CPUS = 2e-3


def _decimals_agree(ours: str, golden: str, rtol: float) -> bool:
    """Texts equal but for their decimals, and each decimal within one unit of its last printed digit (a
    value on a rounding boundary prints either way) plus ``rtol`` of itself."""
    if DECIMAL.sub("#", ours) != DECIMAL.sub("#", golden):
        return False
    for a, b in zip(DECIMAL.findall(ours), DECIMAL.findall(golden)):
        unit = 10.0 ** -len(b.split(".")[1])
        if abs(float(a) - float(b)) > unit * (1 + 1e-9) + rtol * abs(float(b)):
            return False
    return True


def compare_headlines(built: Path, golden: Path, chapters: list[str], rtol: float = RTOL_ACROSS_CPUS) -> list[str]:
    """Differences between the headlines a build wrote and the golden ones; wall time and cache state are not
    compared.

    Estimates, bounds and MDEs agree to ``rtol`` of their row's scale (the golden value or its interval's
    width, the larger): another CPU's fp32 kernels and a warm cache's other batch shapes move the model's
    states by 1e-6 to 1e-5 relative, and a POSIX estimate, a mean of absolute differences of near-equal
    log-probabilities, by up to ~1e-3 of itself (seen: -11.8225 vs -11.8319 on two CI machines, 2e-4 of
    its interval's width). Texts agree exactly but for their printed decimals (:func:`_decimals_agree`).
    Bootstrap bounds are as stable as the data because :func:`ifhelpers.stats.bootstrap_ci` sums each
    resample's units in sorted order."""
    import numpy as np
    import pandas as pd

    problems = []
    for chapter in chapters:
        ours_path, gold_path = built / f"{chapter}.csv", golden / f"{chapter}.csv"
        if not ours_path.exists() or not gold_path.exists():
            problems.append(f"{chapter}: headlines missing ({ours_path if not ours_path.exists() else gold_path})")
            continue
        ours, gold = (pd.read_csv(p, keep_default_na=False, na_values=[""]).drop(columns=VOLATILE) for p in
                      (ours_path, gold_path))
        if list(ours["result"]) != list(gold["result"]):
            problems.append(f"{chapter}: results differ: {list(ours['result'])} vs {list(gold['result'])}")
            continue
        for i, (o, g) in enumerate(zip(ours.to_dict("records"), gold.to_dict("records"))):
            width = abs(g["high"] - g["low"]) if np.isfinite(g["high"] - g["low"]) else 0.0
            for column in gold.columns:
                a, b = o[column], g[column]
                if column in NUMERIC:
                    same = (np.isnan(a) and np.isnan(b)) or abs(a - b) <= rtol * max(abs(b), width) + 1e-12
                elif isinstance(a, str) and isinstance(b, str):
                    same = _decimals_agree(a, b, rtol)
                else:
                    same = (a == b) or (a != a and b != b)
                if not same:
                    problems.append(f"{chapter} row {i} ({g['result'][:60]}) {column}: {a!r} != golden {b!r}")
    return problems


def test_the_golden_comparison_allows_rounding_and_catches_a_change(tmp_path):
    import pandas as pd

    golden_dir, built_dir = tmp_path / "golden", tmp_path / "built"
    golden_dir.mkdir(), built_dir.mkdir()
    row = {"result": "gap", "ours": "+0.009 [-0.021, +0.057] (base -0.003, tuned 0.006)", "estimate": 0.0091,
           "low": -0.02057, "high": 0.05733, "mde": float("nan"), "note": "8 sets; Wilcoxon p = 0.74",
           **{c: "x" for c in VOLATILE}}
    pd.DataFrame([row]).to_csv(golden_dir / "c.csv", index=False)

    def problems(**changes):
        pd.DataFrame([{**row, **changes}]).to_csv(built_dir / "c.csv", index=False)
        return compare_headlines(built_dir, golden_dir, ["c"])

    assert problems() == []
    # another CPU: bounds move by ~5e-4 of the width, a printed digit flips at a rounding boundary
    assert problems(low=-0.02053, ours="+0.009 [-0.020, +0.057] (base -0.003, tuned 0.006)",
                    elapsed_s="y") == []
    assert len(problems(estimate=0.0095)) == 1  # 0.5% of the interval's width: a change
    assert len(problems(ours="+0.009 [-0.023, +0.057] (base -0.003, tuned 0.006)")) == 1  # two printed units
    assert len(problems(note="9 sets; Wilcoxon p = 0.74")) == 1  # counts are exact
    assert len(problems(mde=0.01)) == 1


@pytest.mark.slow
def test_headlines_equal_the_golden_run(built_book):
    """The numbers must not move by accident: every chapter's smoke-size headlines equal tests/golden/.

    After a deliberate change of a number, rewrite them with ``IFHELPERS_UPDATE_GOLDEN=1 pytest
    tests/test_book.py -k golden`` and give the before/after in the commit that makes the change."""
    html, chapters = built_book
    built = html.parent / "headlines"
    if os.environ.get("IFHELPERS_UPDATE_GOLDEN") == "1":
        for chapter in chapters:
            shutil.copy(built / f"{chapter}.csv", GOLDEN / f"{chapter}.csv")
    problems = compare_headlines(built, GOLDEN, chapters)
    assert not problems, "headlines moved:\n" + "\n".join(problems)


@pytest.mark.slow
def test_every_page_renders_without_error_cells(built_book):
    html, chapters = built_book
    for page in ["intro", *(f"notebooks/{c}" for c in chapters)]:
        text = (html / f"{page.replace('intro', 'book/intro')}.html").read_text()
        assert "traceback" not in text.lower(), f"{page} shows an error cell"


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_pages_and_figures_load_in_chromium(built_book):
    from playwright.sync_api import sync_playwright

    html, chapters = built_book
    shots = REPO / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    pages = {"index": html / "book" / "intro.html", **{c: html / "notebooks" / f"{c}.html" for c in chapters}}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        remote = []  # (page, url) of every request that would leave the machine
        current = {"name": None}
        page.on("request", lambda request: None if request.url.startswith(LOCAL_SCHEMES)
                else remote.append((current["name"], request.url)))
        for name, path in pages.items():
            current["name"] = name
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            assert not remote, f"pages request resources off the machine: {remote}"

            formulas = page.locator(".math").count()
            if name == MATH_CHAPTER:
                assert formulas, f"{name}: the chapter shows no formula"
            if formulas:
                page.wait_for_selector("mjx-container", state="attached", timeout=10_000)
                page.wait_for_function("() => window.MathJax?.startup?.promise", timeout=10_000)
                page.evaluate("() => MathJax.startup.promise")  # typesetting has finished
                untypeset = page.locator(".math:not(:has(mjx-container))").count()
                assert not untypeset, f"{name}: {untypeset} of {formulas} formulas not typeset by MathJax"
                assert page.locator("[data-mml-node='merror']").count() == 0, f"{name}: a formula has a TeX error"
            images = page.eval_on_selector_all(
                "article img", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth > 0])")
            broken = [src for src, ok in images if not ok]
            sources = [src for src, _ in images]
            assert len(set(sources)) == len(sources), f"{name}: a figure is shown twice"

            assert not broken, f"{name}: figures that do not load: {broken}"
            if name != "index":
                assert images, f"{name}: the chapter shows no figure"
            assert page.locator(".output.traceback, .output.error").count() == 0, f"{name} shows an error cell"
            page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
        browser.close()
    assert not remote, f"pages request resources off the machine: {remote}"
