"""Configuration as the composition root sees it: every class, so every known variable name.

A service's own class validates only the values that service reads, so a bad value meant for
another service (``PODIUM_RANKER_BATCH_SIZE=abc``) does not stop ``podium serve ingest``: one
ConfigMap may legitimately hold every service's variables. Which ``PODIUM_*`` names exist at
all is known only here, where every class is in sight; :func:`load_settings` refuses a name
no class declares (a typo such as ``PODIUM_INGEST_PROT``) before it builds the class asked for.
``shared`` cannot make that check: it must not import the services.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import Field, ValidationError

from services.ingest.settings import IngestSettings
from services.notifier.settings import NotifierSettings
from services.query.settings import QuerySettings
from services.ranker.settings import RankerSettings
from services.settings import AllServicesSettings
from shared.settings import (
    ENV_PREFIX,
    CommonSettings,
    UnknownSettingError,
    describe_validation_error,
)

SettingsT = TypeVar("SettingsT", bound=CommonSettings)

HTTP_SERVICES: tuple[str, ...] = ("ingest", "query", "notifier")
"""The HTTP services ``podium serve`` runs (``podium dev`` starts each, and the ranker)."""

SERVICE_SETTINGS: dict[str, type[CommonSettings]] = {
    "ingest": IngestSettings,
    "ranker": RankerSettings,
    "query": QuerySettings,
    "notifier": NotifierSettings,
}
"""Each service's own settings class, by the name ``podium`` runs it under."""


class PlatformSettings(AllServicesSettings):
    """Every setting there is: the four services' and the dev stack's.

    What the commands that run the whole platform load (``podium dev``, ``soak``, ``bench``);
    its field names are the known ``PODIUM_*`` variables.
    """

    dev_data_dir: str = Field(".podium", description="Where `podium dev` keeps embedded data.")


def unknown_environment_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``PODIUM_*`` variables in ``environ`` that no settings class declares."""
    known = {ENV_PREFIX + name.upper() for name in PlatformSettings.model_fields}
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name.upper() not in known
    )


def load_settings(settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build ``settings_class`` from the environment plus ``overrides``.

    Raises :class:`UnknownSettingError` for a ``PODIUM_*`` variable that is no setting of any
    service, so a typo never passes silently, and ``ValidationError`` for a bad value of a
    field of ``settings_class``; other services' values are neither read nor checked.
    """
    unknown = unknown_environment_variables(os.environ)
    if unknown:
        raise UnknownSettingError(f"unknown setting {', '.join(unknown)}")
    return settings_class(**overrides)


def load_settings_or_exit(settings_class: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings, or print a one-line error naming the variable and exit with status 2."""
    try:
        return load_settings(settings_class, **overrides)
    except ValidationError as error:
        print(f"podium: {describe_validation_error(error)}", file=sys.stderr)
    except UnknownSettingError as error:
        print(f"podium: invalid configuration: {error}", file=sys.stderr)
    raise SystemExit(2)
