"""The configuration reference: every ``PODIUM_*`` variable with its default and meaning."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

from shared.settings import ENV_PREFIX, Settings


def _default(name: str) -> str:
    field = Settings.model_fields[name]
    if field.default_factory is not None:
        return "(empty)"
    value = field.default
    if value is PydanticUndefined or value is None:
        return "(unset)"
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if str(value) else "(empty)"


def settings_table() -> str:
    """A Markdown table: variable, default, meaning."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | `{_default(name)}` | {description} |")
    return "\n".join(lines)
