"""Every script call stays in one Redis Cluster slot: the keys it receives hash, by their tag, alike."""

from __future__ import annotations

import fakeredis
import pytest
from redis.crc import key_slot

from imunban.keys import Keys, hash_tag
from imunban.limiter import RedisRateLimiter
from imunban.scripts import SCRIPT_KEYS, script_keys

#: Redis Cluster's number of hash slots.
SLOTS = 16384
#: Group ids that try to break the tag: braces, the separator, colons, an empty pair.
GROUPS = ["@TGS#abc", "{evil}", "a}b{c", "{}", "g:1", "x" * 48]


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), polynomial 0x1021, initial 0: the checksum Redis Cluster uses."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key: str) -> int:
    """The slot of ``key``, computed as Redis Cluster does: CRC16 of the hash tag (or the key) mod 16384."""
    return crc16_xmodem(hash_tag(key).encode()) % SLOTS


@pytest.mark.parametrize(
    "key", ["{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "plain", "{imunban:cn}:stats"]
)
def test_slot_matches_redis_py_and_the_cluster_spec_examples(key: str) -> None:
    """Our CRC16/tag rule agrees with redis-py's key_slot, including the tricky cases of the cluster spec."""
    assert slot(key) == key_slot(key.encode())


def test_crc16_check_value() -> None:
    """The XMODEM check value of '123456789' is 0x31C3 (as the Redis Cluster spec states)."""
    assert crc16_xmodem(b"123456789") == 0x31C3


@pytest.mark.parametrize("name", sorted(SCRIPT_KEYS))
@pytest.mark.parametrize("app", ["default", "cn", "intl-2"])
def test_every_script_receives_keys_of_one_slot(name: str, app: str) -> None:
    """The KEYS of each script, built for one app (with several groups where it takes them), share one slot."""
    keys = Keys("imunban", app)
    if "limiter" in SCRIPT_KEYS[name]:  # the limiter passes its SDKAppID's key itself
        named = {
            "stats": keys.stats, "inflight": keys.inflight, "leases": keys.leases, "hold": keys.hold,
            "pause": keys.pause, "limiter": keys.limiter(1400000000),
        }  # fmt: skip
        built = [named[k] for k in SCRIPT_KEYS[name]]
    else:
        built = script_keys(keys, name, GROUPS)
    assert built, name
    assert {slot(k) for k in built} == {slot(keys.stats)}, name


def test_the_limiter_passes_keys_of_its_app_slot(fake_redis: fakeredis.FakeRedis) -> None:
    """The limiter builds its own KEYS (the SDKAppID's key): they land in the app's slot too."""
    keys = Keys("imunban", "cn")
    limiter = RedisRateLimiter(fake_redis, keys, 1400000001, 190.0)
    assert {slot(k) for k in limiter._reserve_keys + limiter._penalize_keys} == {slot(keys.stats)}


def test_deployment_keys_are_never_in_a_script() -> None:
    """Keys shared by all apps (heartbeats, the migration lock) are in no script's KEYS spec."""
    assert not {"workers", "migrate_lock", "migrating"} & {k for spec in SCRIPT_KEYS.values() for k in spec}


def test_apps_spread_over_masters() -> None:
    """The cluster test's apps 'alpha' and 'beta' land on different thirds of the slot range (different masters)."""
    third = {name: slot(Keys("imunban", name).stats) * 3 // SLOTS for name in ("alpha", "beta")}
    assert third["alpha"] != third["beta"]
