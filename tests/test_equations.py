"""Every quantity of the paper has exactly one home in the package (the `paper:` tags of docstrings)."""


from ifhelpers import equations, paper


def test_every_quantity_of_the_paper_has_one_function():
    homes = equations.homes()
    wrong = homes[homes["n_functions"] != 1]
    assert wrong.empty, "quantities with no function or more than one:\n" + wrong[["quantity", "function"]].to_string()


def test_every_tag_names_a_quantity_of_the_paper():
    tags = equations.tagged_functions()
    unknown = tags[~tags["quantity"].isin(list(paper.QUANTITIES))]
    assert unknown.empty, unknown.to_string()


def test_homes_finds_tags_and_users(tmp_path):
    package = tmp_path / "ifhelpers"
    (package / "chapters").mkdir(parents=True)
    (package / "metrics.py").write_text('def gap(x):\n    """A gap.\n\n    paper: Table 1; Table 4\n    """\n')
    (package / "other.py").write_text('def again(x):\n    """paper: Table 1"""\n')
    (package / "chapters" / "vs.py").write_text("from ifhelpers import metrics\n\n\ndef units(x):\n"
                                                "    return metrics.gap(x)\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_a.md").write_text("table = vs.units(reps)\n")  # reaches gap through units
    (tmp_path / "notebooks" / "02_b.md").write_text("the gap is mentioned, not called\n")
    homes = equations.homes(package, tmp_path / "notebooks").set_index("quantity")
    assert homes.loc["Table 1", "n_functions"] == 2  # two homes: the test above would fail
    assert homes.loc["Table 4", "function"] == "ifhelpers.metrics.gap" and homes.loc["Table 4", "chapters"] == ["01_a"]
    assert homes.loc["eq. 2", "n_functions"] == 0
    assert "{doc}`../notebooks/01_a`" in equations.markdown_table(homes.reset_index())


def test_every_quantity_is_computed_by_a_chapter():
    """A tagged function that no chapter reaches (through the calls of its notebook, measurements included)
    is a home nobody lives in."""
    homes = equations.homes()
    unused = homes[homes["chapters"].map(len) == 0]
    assert unused.empty, "quantities no chapter computes:\n" + unused[["quantity", "function"]].to_string()
