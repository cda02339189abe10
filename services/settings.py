"""Every service's settings in one object, for what runs the whole platform from one config.

No service imports this module (each reads only its own class, and import-linter keeps the
services independent). It serves the harnesses that start every service from one
configuration: the soak and the benchmark, which sit above the services but below the
composition root and so cannot import ``podium.settings.PlatformSettings`` (that class adds
the dev-stack field to this one), and the tests.
"""

from __future__ import annotations

from services.ingest.settings import IngestSettings
from services.notifier.settings import NotifierSettings
from services.query.settings import QuerySettings
from services.ranker.settings import RankerSettings


class AllServicesSettings(IngestSettings, RankerSettings, QuerySettings, NotifierSettings):
    """The four services' settings together: each field once, every service's values checked.

    Children started from it (``settings_environment``) get every service's variables, which
    each of them accepts and validates only in part: its own class.
    """
