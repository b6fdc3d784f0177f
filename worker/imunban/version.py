"""The installed version of imunban, from the package metadata (``imunban.__version__`` is this)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("imunban")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
