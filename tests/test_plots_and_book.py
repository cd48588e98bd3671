"""The chapter preamble's pieces: colours keyed by the registry, and the chapter's roles."""

import pytest

from ifhelpers import book


def test_a_model_keeps_its_colour_whatever_else_is_plotted():
    roles = {"gemma-3-270m": "base", "smollm2-135m-instruct": "instruction-tuned",
             "gemma-3-270m-ift-free-form": "instruction-tuned", "org/other": "instruction-tuned"}
    everything = book.model_colors(list(roles), roles)
    alone = book.model_colors(["gemma-3-270m", "gemma-3-270m-ift-free-form"], roles)
    reordered = book.model_colors(["org/other", "gemma-3-270m-ift-free-form", "smollm2-135m-instruct"], roles)
    assert alone["gemma-3-270m-ift-free-form"] == everything["gemma-3-270m-ift-free-form"]
    assert reordered["smollm2-135m-instruct"] == everything["smollm2-135m-instruct"]
    assert everything["smollm2-135m-instruct"] != everything["gemma-3-270m-ift-free-form"]
    assert everything["org/other"] not in {everything[m] for m in roles if m != "org/other"}


def test_setup_checks_models_and_roles_before_anything_loads():
    with pytest.raises(ValueError, match="got no instruction-tuned model"):
        book.setup(["gemma-3-270m"], quiet=True)
    chapter = book.setup(["gemma-3-270m", "smollm2-135m-instruct"], quiet=True)
    assert (chapter.base_name, chapter.tuned_names) == ("gemma-3-270m", ["smollm2-135m-instruct"])
    assert set(chapter.colors) == {"gemma-3-270m", "smollm2-135m-instruct"} and chapter.caution
    assert book.setup(["gemma-3-270m"], require_pair=False, quiet=True).tuned_name is None
