"""constraints.txt pins every dependency of the image and is current relative to pyproject.toml (no network)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s#;]+)\s*(?:#\s*via\s+(.*))?$")


def _pins() -> dict[str, tuple[Version, str]]:
    """name -> (pinned version, what it is there for), from constraints.txt."""
    pins: dict[str, tuple[Version, str]] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"constraints.txt: not an exact pin: {line!r}"
        pins[canonicalize_name(match.group(1))] = (Version(match.group(2)), match.group(3) or "")
    return pins


def _requirements() -> list[Requirement]:
    return [
        Requirement(text) for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]


def test_every_dependency_is_pinned_within_its_range() -> None:
    """Each [project] dependency has an exact pin in constraints.txt that its version range accepts."""
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not pinned: run `make constraints`"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} is outside pyproject.toml's {requirement.specifier}: run `make constraints`"
        )


def test_no_stale_top_level_pin() -> None:
    """The pins constraints.txt holds for pyproject.toml itself are exactly its dependencies (none removed since)."""
    direct = {name for name, (_, via) in _pins().items() if "imunban (pyproject.toml)" in via}
    assert direct == {canonicalize_name(r.name) for r in _requirements()}, "run `make constraints`"


def test_dockerfile_installs_with_the_constraints() -> None:
    """The image is built from the pinned versions: the file is in the build context and pip uses it."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY constraints\.txt\b", dockerfile, flags=re.MULTILINE)
    assert re.search(r"^RUN pip install --constraint constraints\.txt \.", dockerfile, flags=re.MULTILINE)
    assert "!constraints.txt" in (ROOT / ".dockerignore").read_text().splitlines()
