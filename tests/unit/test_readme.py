"""The README stays true: its configuration table equals the settings in the code."""

from __future__ import annotations

from pathlib import Path

from podium.ops.settings_doc import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_table_matches_the_settings() -> None:
    text = README.read_text()
    start = text.index("<!-- settings:start -->") + len("<!-- settings:start -->")
    end = text.index("<!-- settings:end -->")
    assert text[start:end].strip() == settings_table(), "run: podium settings, paste into README"


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text
    assert "make test" in text
