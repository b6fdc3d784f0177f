"""The simulator's per-group knobs (sticky answer, delay) and the run-time global error switch, without sockets."""

from __future__ import annotations

import json

import pytest

from imunban.api import UNBAN_PATH
from imunban.apps import AppConfig
from imunban.cli import build_parser
from imunban.secret import Secret
from imunban.sim.config import SimConfig, validate_changes
from imunban.sim.core import SimResponse, Simulator
from imunban.usersig import gen_usersig

KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
APPID = 1400000000
NOW_S = 1_700_000_000


def make_sim(config: SimConfig) -> Simulator:
    app = AppConfig("default", sdkappid=APPID, identifier="administrator", secret_key=Secret(KEY))
    return Simulator(app, config, clock=lambda: float(NOW_S), monotonic=lambda: 0.0)


def call(sim: Simulator, group: str) -> SimResponse:
    sig = gen_usersig(APPID, "administrator", KEY, 86_400, NOW_S)
    target = f"{UNBAN_PATH}?sdkappid={APPID}&identifier=administrator&usersig={sig}&random=1&contenttype=json"
    return sim.handle("POST", target, json.dumps({"GroupId": group, "Members_Account": ["u1"]}).encode())


def code(response: SimResponse) -> int:
    return int(json.loads(response.body)["ErrorCode"])


def test_group_error_is_answered_for_that_group_only() -> None:
    """A group with a sticky answer gets it on every call; other groups succeed."""
    sim = make_sim(SimConfig(group_errors={"g0": 99_999}))
    assert [code(call(sim, "g0")) for _ in range(3)] == [99_999] * 3
    assert code(call(sim, "g1")) == 0
    assert sim.unbanned("g0") == frozenset()


def test_global_error_comes_before_a_group_error_and_switches_at_run_time() -> None:
    """A configuration error answers every group, sticky ones too; switched off, each group's own answer is back."""
    sim = make_sim(SimConfig(global_error=60010, group_errors={"g0": 99_999}))
    assert (code(call(sim, "g0")), code(call(sim, "g1"))) == (60010, 60010)
    sim.configure(global_error=None)
    assert (code(call(sim, "g0")), code(call(sim, "g1"))) == (99_999, 0)
    sim.configure(global_error=10007)
    assert code(call(sim, "g1")) == 10007


def test_group_delay_adds_to_that_groups_calls() -> None:
    """A per-group delay adds to the fixed latency for that group's calls only."""
    sim = make_sim(SimConfig(latency_ms=10, group_delay_ms={"slow": 500}))
    assert call(sim, "slow").delay_s == pytest.approx(0.51)
    assert call(sim, "fast").delay_s == pytest.approx(0.01)


def test_group_knobs_validate_and_show_in_json() -> None:
    """The knobs are validated like every other option and appear in the config JSON."""
    clean = validate_changes({"group_errors": {"g": 10007}, "group_delay_ms": {"g": 2.5}})
    assert clean == {"group_errors": {"g": 10007}, "group_delay_ms": {"g": 2.5}}
    for bad in ({"group_errors": {"g": "x"}}, {"group_errors": ["g"]}, {"group_delay_ms": {"g": -1}}):
        with pytest.raises(ValueError, match="group_"):
            validate_changes(bad)
    data = SimConfig(group_errors={"g": 1}, group_delay_ms={"g": 2.0}).to_json()
    assert (data["group_errors"], data["group_delay_ms"]) == ({"g": 1}, {"g": 2.0})


def test_simulate_cli_takes_group_knobs() -> None:
    """`imunban simulate --group-error G=CODE --group-delay-ms G=MS` parses into group -> value pairs."""
    args = build_parser().parse_args(
        ["simulate", "--group-error", "@TGS#a=b=99999", "--group-error", "g2=10007", "--group-delay-ms", "g=250"]
    )
    assert dict(args.group_error) == {"@TGS#a=b": 99_999, "g2": 10007}
    assert dict(args.group_delay_ms) == {"g": 250.0}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--group-error", "nogroup"])
