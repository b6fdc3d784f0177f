"""``imunban web``: the operator console (pages, JSON API, live streams) over the engine's read views.

A tool like the CLI: it imports the engine, never the reverse (see the import-linter contracts).
"""

from imunban.web.app import app_from_settings, create_app

__all__ = ["app_from_settings", "create_app"]
