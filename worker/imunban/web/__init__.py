"""``imunban web``: the operator console (pages, JSON API, live streams) over the engine's read views.

A tool like the CLI: it imports the engine, never the reverse (see the import-linter contracts).
"""

from imunban.web.app import create_app

__all__ = ["create_app"]
