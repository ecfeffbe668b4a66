"""Library source shown on the pages comes from the live code, with relative file names."""
from __future__ import annotations

import inspect

from cyclegan_lib import page
from cyclegan_lib.buffer import ImageHistoryBuffer
from cyclegan_lib.models import ResidualBlock


def test_source_of_is_the_live_source():
    code, file, first, last = page.source_of(ImageHistoryBuffer.query)
    assert file == "cyclegan_lib/buffer.py"
    assert "def query" in code and code.startswith("@torch.no_grad()")
    assert last - first + 1 == len(inspect.getsourcelines(ImageHistoryBuffer.query)[0])
    assert page.source_of("cyclegan_lib.buffer.ImageHistoryBuffer.query")[0] == code


def test_source_html_is_highlighted_and_machine_free():
    html = page.source_html(ResidualBlock)
    assert "style=" in html and "class ResidualBlock" not in html  # tokens are coloured spans
    assert "ResidualBlock" in html and "cyclegan_lib/models.py" in html
    assert "/work/" not in html and "/home/" not in html


def test_show_source_prints_outside_ipython(capsys):
    page.show_source("cyclegan_lib.losses.adversarial_loss")
    out = capsys.readouterr().out
    assert "def adversarial_loss" in out


def test_glue_returns_nothing_to_show():
    """A chapter cell that ends with glue(...) must not print the raw value on the page."""
    assert page.glue("x", 0.25, ".2f") is None
    assert page.glue("y", None, ".2f") is None  # a missing metric does not break the page


def test_every_source_a_chapter_shows_exists():
    """The chapters name library objects by dotted path; a refactor must keep them valid."""
    import re
    from pathlib import Path

    names = set()
    for md in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.md")):
        names.update(re.findall(r'"(cyclegan_lib\.[\w.]+)"', md.read_text()))
    assert len(names) >= 12, names
    for name in sorted(names):
        code, file, _, _ = page.source_of(name)
        assert code.strip() and file.startswith("cyclegan_lib/"), name


def test_grep_source_shows_the_calls_with_line_numbers():
    text = page.grep_source("cyclegan_lib.cyclegan.CycleGAN.update_generators", "random_patches")
    lines = [line for line in text.splitlines() if line != "..."]
    assert len(lines) == 2 and all("random_patches" in l and "# line " in l for l in lines)
    assert "d_b(random_patches(fake_b" in lines[0]
