"""``IMUNBAN_*`` variables imunban does not read: warned about with the closest known name (a typo is ignored)."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping

from imunban.apps import PREFIX

#: ``IMUNBAN_*`` variables the deployment recipes give Redis (compose), not imunban: never reported as unknown.
RECIPE_VARIABLES = frozenset({PREFIX + "REDIS_MAXMEMORY", PREFIX + "REDIS_PASSWORD"})

log = logging.getLogger(__name__)
#: Unknown variables already warned about in this process (settings are read by several parts of one process).
_warned: set[str] = set()


def unknown_variables(environ: Mapping[str, str], known: set[str]) -> list[tuple[str, str | None]]:
    """Each ``IMUNBAN_*`` name in ``environ`` imunban does not read, with the closest known name (or None)."""
    choices = sorted(known)
    return [
        (name, next(iter(difflib.get_close_matches(name, choices, n=1, cutoff=0.6)), None))
        for name in sorted(environ)
        if name.startswith(PREFIX) and name not in known and name not in RECIPE_VARIABLES
    ]


def warn_unknown(unknown: list[tuple[str, str | None]]) -> None:
    """One warning per unknown variable, once per process: ignored, not an error (the closest name helps a typo)."""
    for name, closest in unknown:
        if name not in _warned:
            _warned.add(name)
            hint = f"; did you mean {closest}?" if closest else " (see docs/configuration.md)"
            log.warning("%s is not a variable imunban reads: ignored%s", name, hint)
