"""The README stays true: its configuration table equals the settings, its layout the tree."""

from __future__ import annotations

import re
from pathlib import Path

from podium.ops.settings_doc import settings_table

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_readme_configuration_table_matches_the_settings() -> None:
    text = README.read_text()
    start = text.index("<!-- settings:start -->") + len("<!-- settings:start -->")
    end = text.index("<!-- settings:end -->")
    assert text[start:end].strip() == settings_table(), "run: podium settings, paste into README"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text


def test_readme_layout_table_names_every_top_level_package() -> None:
    """The layout table lists exactly the folders that exist, and every Python package."""
    readme = README.read_text()
    listed = set(re.findall(r"^\| `([a-z_/]+)/` \|", readme, flags=re.MULTILINE))
    assert listed, "layout table not found"
    for path in listed:
        assert (ROOT / path).is_dir(), f"README lists {path}/, which does not exist"
    packages = {
        child.name
        for child in ROOT.iterdir()
        if (child / "__init__.py").is_file() and child.name != "tests"
    }
    top_level = {path.split("/")[0] for path in listed}
    assert packages <= top_level, f"README's layout table misses {sorted(packages - top_level)}"
