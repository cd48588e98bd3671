"""Every chapter parameter is declared once, in its cell; bad values get one line before anything runs."""

from __future__ import annotations

import pytest
import yaml

from ifhelpers import cli, parameters

CELL = '''models = ["a"]  # registry names [list of str]
n = 3           # items [int ≥ 1]
share = 0.5     # [float in 0..1]
ids = [0, 1]    # [pararel prompt ids]
mode = "probe"  # [one of: probe, lora]
cap = None      # None: all [int ≥ 2 or None]
'''


def test_declarations_come_from_the_cell_comments():
    declared = parameters.declarations(CELL)
    assert list(declared) == ["models", "n", "share", "ids", "mode", "cap"]
    assert declared["n"] == parameters.Declaration("n", 3, "int ≥ 1", "items")
    assert declared["cap"].comment == "None: all" and declared["cap"].spec == "int ≥ 2 or None"
    with pytest.raises(parameters.ParameterError, match="'x' has no declaration"):
        parameters.declarations("x = 1  # a number without a declaration\n")


@pytest.mark.parametrize("value, spec, problem", [
    (0, "int ≥ 1", "must be ≥ 1"), (2.5, "int ≥ 1", "must be an int"), ("abc", "int ≥ 1", "must be an int"),
    (True, "int ≥ 0", "must be an int"), (1.5, "float in 0..1", "must be in 0..1"), (None, "int ≥ 1", "not None"),
    ("full", "one of: probe, lora", "must be one of probe, lora"), ([], "list of float > 0", "non-empty list"),
    ([1e-4, -1.0], "list of float > 0", "item -1.0 must be > 0"), ([7], "pararel prompt ids", "unknown pararel prompt ids [7]"),
    (["astrology"], "mmlu subjects", "unknown mmlu subjects ['astrology']"), (["P9999"], "pararel relations", "unknown"),
    (["cola"], "becel tasks", "unknown becel tasks ['cola']"), (["templates-x"], "tuning arms", "is not an arm"),
    ("x", "dict", "must be a mapping"), (1, "bool", "True or False"),
    ([0, 0], "list of int ≥ 0", "repeats 0: give each once"), ([0, 1, 0], "pararel prompt ids", "repeats 0"),
    (["free-form", "free-form"], "tuning arms", "repeats 'free-form'"), ([1, 1], "list of int ≥ 0 or None", "repeats 1"),
])
def test_check_value_says_what_is_wrong(value, spec, problem):
    assert problem in parameters.check_value(value, spec)


@pytest.mark.parametrize("value, spec", [
    (1, "int ≥ 1"), (None, "int ≥ 2 or None"), (0.0, "float in 0..1"), ([0, 2], "pararel prompt ids"),
    (["astronomy"], "mmlu subjects"), (["P17"], "pararel relations"), (["templates-3", "free-form"], "tuning arms"),
    ("probe", "one of: probe, lora"), ({}, "dict"), ([0, 1], "list of int ≥ 0"),
])
def test_check_value_accepts_what_is_valid(value, spec):
    assert parameters.check_value(value, spec) is None


def test_every_chapter_declares_every_parameter_and_its_defaults_and_smoke_sizes_are_valid():
    smoke = yaml.safe_load((cli.NOTEBOOKS / "smoke.yaml").read_text())
    for name, path in cli.chapters().items():
        declared = cli.parameter_declarations(path)
        assert {"models", "roles", "results_dir"} <= set(declared), name
        assert parameters.check(declared, {k: d.default for k, d in declared.items()}) == [], name
        assert parameters.check(declared, smoke.get(path.stem, {})) == [], name
        assert set(smoke.get(path.stem, {})) <= set(declared), name


def test_papermill_sees_every_declared_parameter():
    """papermill's own reading of the parameters cell (it warns "Passed unknown parameter" and "Unable to
    parse line" otherwise, which told a researcher that a --set value was ignored)."""
    import jupytext
    from papermill.translators import PythonTranslator

    for name, path in cli.chapters().items():
        cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
        assert {p.name for p in PythonTranslator.inspect(cell)} == set(cli.parameter_declarations(path)), name


def test_a_declaration_with_an_equals_sign_is_refused_with_the_fix():
    with pytest.raises(parameters.ParameterError, match="Write ≥ / ≤ instead of >= / <="):
        parameters.declarations("n = 3  # items [int >= 1]")


@pytest.mark.parametrize("args, message", [
    (["--set", "n_examples=-3"], "n_examples=-3 must be ≥ 1"),
    (["--set", "pararel_n_per_relation=abc"], "pararel_n_per_relation='abc' must be an int"),
    (["--set", "mmlu_subjects=[astrology]"], "unknown mmlu subjects ['astrology']"),
    (["--set", "prompt_ids=[7]"], "unknown pararel prompt ids [7]"),
    (["--set", "arms=[templates-x]"], "'templates-x' is not an arm"),
    (["--set", "seeds=[]"], "seeds=[] must be a non-empty list"),
    (["--set", "becel_tasks=[cola]"], "unknown becel tasks ['cola']"),
    (["--set", "pararel_relations=[P9999]"], "unknown pararel relations ['P9999']"),
    (["--set", "seeds=[0, 0]"], "seeds=[0, 0] repeats 0: give each once"),  # one tuned model counted as two seeds
    (["--set", "prompt_ids=[0, 0]"], "prompt_ids=[0, 0] repeats 0: give each once"),
])
def test_run_refuses_bad_values_with_one_line_and_code_2(args, message, capsys, tmp_path):
    code = cli.main(["run", "tune_it_yourself", "--models", "base=gemma-3-270m", "--runs-dir", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize("models, message", [
    ("pair=nosuchpair", "Unknown pair 'nosuchpair'"), ("base=nosuch,ift=gemma-3-270m", "Unknown model 'nosuch'"),
])
def test_run_refuses_unknown_models_and_pairs_without_a_traceback(models, message, capsys, tmp_path):
    assert cli.main(["run", "predictions", "--models", models, "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ifhelpers: {message}") and "Traceback" not in err


def test_set_values_read_exponents_as_numbers():
    assert cli.parse_value("1e-4") == 1e-4 and cli.parse_value("[5e-4, 1.0e-4]") == [5e-4, 1e-4]
    assert cli.parse_value("abc") == "abc" and cli.parse_value("[templates-1, free-form]") == ["templates-1", "free-form"]
    assert cli.parse_value("null") is None and cli.parse_value("3") == 3


def test_sizes_above_their_ceiling_are_refused_as_mistakes():
    from ifhelpers import parameters

    declared = parameters.declarations("n_resamples = 2000  # bootstrap resamples [int ≥ 10]\n"
                                       "pararel_n_per_relation = 12  # facts [int ≥ 1]\nseed = 0  # [int ≥ 0]\n")
    assert parameters.check(declared, {"n_resamples": 100_000, "seed": 10**12}) == []  # a seed has no ceiling
    (line,) = parameters.check(declared, {"n_resamples": 10_000_000_000}, "01_vector_space")
    assert line.startswith("01_vector_space: n_resamples=10000000000 is above the ceiling 100,000 (bootstrap")
    assert "can only be a mistake" in line and line.endswith("(bootstrap resamples; default 2000)")
    assert "above the ceiling 10,000,000" in parameters.check(declared, {"pararel_n_per_relation": 10**8})[0]
