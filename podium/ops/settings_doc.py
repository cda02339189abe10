"""The configuration reference: every ``PODIUM_*`` variable, who reads it, default, meaning.

Generated from the settings classes, section by section: the common settings (every service
reads and validates them), then each service's own, then the dev stack's, so the "Used by"
column is where a field is declared, never a hand-kept list.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from podium.settings import SERVICE_SETTINGS, PlatformSettings
from shared.settings import ENV_PREFIX, CommonSettings

SECTIONS: tuple[tuple[type[BaseSettings], str], ...] = (
    (CommonSettings, "all services"),
    *((settings_class, service) for service, settings_class in SERVICE_SETTINGS.items()),
    (PlatformSettings, "`podium dev`"),
)
"""Each class whose own fields form one block of the table, and who reads those fields."""


def own_fields(settings_class: type[BaseSettings]) -> list[str]:
    """The fields ``settings_class`` declares itself (none of its base classes has them)."""
    inherited = {
        name
        for base in settings_class.__mro__[1:]
        if isinstance(base, type) and issubclass(base, BaseSettings)
        for name in base.model_fields
    }
    return [name for name in settings_class.model_fields if name not in inherited]


def _default(name: str) -> str:
    field = PlatformSettings.model_fields[name]
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
    """A Markdown table: variable, who reads it, default, meaning."""
    lines = ["| Variable | Used by | Default | Meaning |", "| --- | --- | --- | --- |"]
    for settings_class, used_by in SECTIONS:
        for name in own_fields(settings_class):
            field = PlatformSettings.model_fields[name]
            description = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{ENV_PREFIX}{name.upper()}` | {used_by} | `{_default(name)}` | {description} |"
            )
    return "\n".join(lines)
