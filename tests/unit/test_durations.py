"""``--in`` durations: 90s, 15m, 2h, 3d, compound and plain seconds; everything else is a named error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imunban.cli.durations import MAX_DURATION_S, parse_duration
from imunban.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7_200),
        ("3d", 259_200),
        ("1w", 604_800),
        ("1h30m", 5_400),
        ("1d2h3m4s", 93_784),
        ("1.5h", 5_400),
        (".5m", 30),
        ("90", 90),
        ("0", 0),
        ("2.25", 2.25),
        ("1e3", 1_000),
        (" 15M ", 900),
        ("+5", 5),
    ],
)
def test_valid_durations(text: str, seconds: float) -> None:
    """Each unit, compounds, fractions and plain seconds parse to seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("-5", "must not be negative"),
        ("-5m", "is not a duration"),
        ("5x", "is not a duration"),
        ("h", "is not a duration"),
        ("1h1h", "is not a duration"),
        ("1h 30m", "is not a duration"),
        ("m5", "is not a duration"),
        ("5m3", "is not a duration"),
        ("inf", "is not a duration"),
        ("nan", "is not a duration"),
        ("1e999", "must be a finite duration"),
        ("200y", "is not a duration"),
        (f"{MAX_DURATION_S + 1}", "at most 100 years"),
        ("40000d", "at most 100 years"),
    ],
)
def test_invalid_durations_name_the_field(text: str, reason: str) -> None:
    """Bad input raises ValidationError for the given field with a readable reason."""
    with pytest.raises(ValidationError) as info:
        parse_duration(text, "--in")
    assert info.value.field == "--in"
    assert reason in info.value.reason


@given(st.text(max_size=30))
def test_arbitrary_text_parses_or_raises_validation_error(text: str) -> None:
    """Any text gives a finite non-negative number of seconds or a ValidationError, nothing else."""
    try:
        seconds = parse_duration(text)
    except ValidationError:
        return
    assert 0 <= seconds <= MAX_DURATION_S


@given(st.integers(0, 10_000), st.sampled_from([("s", 1), ("m", 60), ("h", 3_600), ("d", 86_400)]))
def test_number_with_unit_multiplies(amount: int, unit: tuple[str, int]) -> None:
    """N followed by a unit is N times the unit's seconds."""
    assert parse_duration(f"{amount}{unit[0]}") == amount * unit[1]
