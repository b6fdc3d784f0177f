"""What a worker process checks and does once, before its first task, on an opened deployment."""

from __future__ import annotations

import logging

from imunban.connection import require_reachable
from imunban.deployment import Deployment
from imunban.errors import ConfigError
from imunban.ha import check_memory_policy
from imunban.keys import DEFAULT_APP
from imunban.migrate import has_legacy_keys, migrate_single_app_layout
from imunban.orphans import orphaned_apps, record_apps

log = logging.getLogger(__name__)


def prepare_worker(deployment: Deployment) -> None:
    """Refuse to deliver with missing credentials or an evicting Redis; move a pre-apps store under ``default``.

    Every app's credentials are read now (a key file included), so a worker fails at start naming
    the app, the file and the field, not at its first call.
    """
    deployment.require_delivery()
    require_reachable(deployment.client)
    for app in deployment:
        # Built now, not by the first delivery run of each app: building it inside a run stalled that
        # app's first runs while another app drained (bench apps: 0.85 of the limit instead of 0.99).
        app.deliverer  # noqa: B018
    # An evicting Redis could drop queued unbans without a trace: refuse it before any work starts.
    check_memory_policy(deployment.client)
    prefix = deployment.settings.key_prefix
    record_apps(deployment.client, prefix, deployment.names)
    for name, counts in orphaned_apps(deployment.client, prefix, deployment.names).items():
        log.warning(
            "app %r still has requests in Redis (%s) but this deployment does not serve it (removed or renamed in "
            "the apps file?): nothing will deliver them until it is served again",
            name,
            ", ".join(f"{state} {n:,}" for state, n in counts.items() if n),
        )
    if DEFAULT_APP in deployment.apps:
        migrate_single_app_layout(deployment.client, prefix, DEFAULT_APP)
    elif has_legacy_keys(deployment.client, prefix):
        raise ConfigError(
            "Redis holds requests written before several apps, and no app is named 'default' to move them to: "
            "run `imunban migrate --app NAME` with the app they are for, then start the workers"
        )
