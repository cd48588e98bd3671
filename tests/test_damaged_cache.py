"""A damaged cache is never used and never a crash: what does not read back whole is said on one line,
removed and computed again, and the re-run gives what a clean run gives.

Every kind of file the user cache holds is damaged here (forward-pass parts, a converted or tuned model's
folder, a BECEL classifier's checkpoint), with tiny random models and function-level calls."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from ifhelpers.model import cache, engine

TEXTS = ["the capital of france is paris", "rome is a city in italy", "berlin is located in germany",
         "paris is a city", "it is widely known that everyone was born"]
REQUEST = engine.Request(resid=True, top_k=3)


def clean_run(tiny_lm, root):
    return engine.run(tiny_lm, TEXTS, REQUEST, cache=root, max_batch_size=2)


def parts(root):
    return sorted(root.rglob("part-*.npz"))


def truncate(part, parts_):
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def empty(part, parts_):
    part.write_bytes(b"")


def flip_a_byte(part, parts_):
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def another_parts_content(part, parts_):
    other = next(p for p in parts_ if p != part)
    shutil.copyfile(other, part)


def other_row_shape(part, parts_):
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["resid"] = arrays["resid"][:, :-1]  # one layer short
    np.savez(part.with_suffix(""), **arrays)


def fewer_rows(part, parts_):
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["top_ids"] = arrays["top_ids"][:-1]
    np.savez(part.with_suffix(""), **arrays)


def not_a_zip(part, parts_):
    part.write_text("not a part at all")


DAMAGE = [truncate, empty, flip_a_byte, another_parts_content, other_row_shape, fewer_rows, not_a_zip]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_a_damaged_part_of_the_forward_pass_cache_is_said_and_computed_again(tiny_lm, tmp_path, capsys, damage):
    expected = clean_run(tiny_lm, tmp_path / "clean")
    first = clean_run(tiny_lm, tmp_path / "c")
    written = parts(tmp_path / "c")
    assert len(written) == 3 and all(np.array_equal(first[k], expected[k]) for k in expected)
    victim = written[1]
    damage(victim, written)
    capsys.readouterr()
    before = cache.PARTS_WRITTEN
    again = clean_run(tiny_lm, tmp_path / "c")
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ifhelpers: the cache part")]
    assert len(said) == 1 and str(victim) in said[0] and "it is removed and computed again" in said[0]
    assert cache.PARTS_WRITTEN - before >= 1  # its texts were computed again
    assert sorted(again) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name])
    capsys.readouterr()
    clean_run(tiny_lm, tmp_path / "c")  # and the cache is whole again: nothing said, nothing computed
    assert "ifhelpers:" not in capsys.readouterr().out


def test_part_layout_reads_a_whole_part_and_names_what_is_wrong(tiny_lm, tmp_path):
    clean_run(tiny_lm, tmp_path)
    assert sum(len(cache.part_layout(p)[0]) for p in parts(tmp_path)) == len(TEXTS)
    part = parts(tmp_path)[0]
    keys, layout = cache.part_layout(part)
    assert layout["resid"] == ("float32", (4, 32)) and layout["top_ids"][1] == (3,)  # h^0 ... h^3, width 32
    truncate(part, [])
    with pytest.raises((zipfile.BadZipFile, ValueError, OSError)):
        cache.part_layout(part)
