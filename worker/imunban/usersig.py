"""UserSig v2 (HMAC-SHA256): generation, verification and a renewing cache for the admin sig.

The algorithm is the one of Tencent's TLSSigAPIv2 libraries (docs/semantics.md#the-api):

1. content = ``TLS.identifier:{id}\\nTLS.sdkappid:{appid}\\nTLS.time:{t}\\nTLS.expire:{expire}\\n``
2. ``TLS.sig`` = standard base64 of HMAC-SHA256(key = the secret key's UTF-8 bytes, content)
3. a JSON document with those fields -> zlib -> base64 with ``+/=`` replaced by ``*-_``.

Generation takes the time as an argument so that tests and the cache control the clock; the
official Python package reads ``time.time()`` itself and ships no verifier, hence this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from imunban.settings import Secret

__all__ = [
    "E_APPID_MISMATCH",
    "E_BAD_SIGNATURE",
    "E_EXPIRED",
    "E_IDENTIFIER_MISMATCH",
    "E_UNPARSEABLE",
    "UserSigCache",
    "UserSigError",
    "decode_usersig",
    "gen_usersig",
    "verify_usersig",
]

#: The API's own error codes for each way a UserSig can be wrong.
E_EXPIRED = 70001
E_UNPARSEABLE = 70003
E_BAD_SIGNATURE = 70009
E_IDENTIFIER_MISMATCH = 70013
E_APPID_MISMATCH = 70014

_TO_URL = str.maketrans({"+": "*", "/": "-", "=": "_"})
_FROM_URL = str.maketrans({"*": "+", "-": "/", "_": "="})

#: A sig is a few hundred bytes; refusing huge input keeps a hostile caller from making us inflate megabytes.
_MAX_SIG_LEN = 4096
_MAX_INFLATED = 16384


class UserSigError(ValueError):
    """A UserSig failed verification; ``code`` is the ErrorCode the real API would answer."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(f"{code}: {message}")


def _content(identifier: str, sdkappid: int, time_s: int, expire_s: int, userbuf_b64: str | None) -> bytes:
    text = f"TLS.identifier:{identifier}\nTLS.sdkappid:{sdkappid}\nTLS.time:{time_s}\nTLS.expire:{expire_s}\n"
    if userbuf_b64 is not None:
        text += f"TLS.userbuf:{userbuf_b64}\n"
    return text.encode("utf-8")


def _hmac_b64(key: str, content: bytes) -> str:
    digest = hmac.new(key.encode("utf-8"), content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def gen_usersig(sdkappid: int, identifier: str, key: str, expire_s: int, now_s: int) -> str:
    """Return a UserSig valid from ``now_s`` for ``expire_s`` seconds (a duration, not a deadline)."""
    if expire_s <= 0:
        raise ValueError("expire_s must be positive")
    doc = {
        "TLS.ver": "2.0",
        "TLS.identifier": identifier,
        "TLS.sdkappid": int(sdkappid),
        "TLS.expire": int(expire_s),
        "TLS.time": int(now_s),
        "TLS.sig": _hmac_b64(key, _content(identifier, sdkappid, int(now_s), int(expire_s), None)),
    }
    # Compact separators: the server accepts any JSON layout, and a shorter sig means a shorter URL.
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw)).decode("ascii").translate(_TO_URL)


def decode_usersig(sig: str) -> dict[str, Any]:
    """Reverse the URL-safe base64 and zlib layers; raise UserSigError(70003) if that fails."""
    if not sig:
        raise UserSigError(E_UNPARSEABLE, "UserSig is empty")
    if len(sig) > _MAX_SIG_LEN:
        raise UserSigError(E_UNPARSEABLE, "UserSig is too long")
    inflater = zlib.decompressobj()
    try:
        packed = base64.b64decode(sig.translate(_FROM_URL).encode("ascii"), validate=True)
        raw = inflater.decompress(packed, _MAX_INFLATED)
    except (zlib.error, ValueError) as exc:  # binascii.Error and UnicodeError are ValueErrors
        raise UserSigError(E_UNPARSEABLE, f"UserSig cannot be decoded ({type(exc).__name__})") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise UserSigError(E_UNPARSEABLE, "UserSig is truncated or too large")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError:
        raise UserSigError(E_UNPARSEABLE, "UserSig does not hold JSON") from None
    if not isinstance(doc, dict):
        raise UserSigError(E_UNPARSEABLE, "UserSig is not a JSON object")
    return doc


def _int_field(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    # bool is an int subclass; a sig with "TLS.time": true is malformed, not time 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise UserSigError(E_UNPARSEABLE, f"{name} is missing or not an integer")
    return value


def verify_usersig(sig: str, sdkappid: int, identifier: str, key: str, now_s: int) -> None:
    """Check ``sig`` as the server does; return None if valid, else raise UserSigError with the API's code."""
    doc = decode_usersig(sig)
    sig_appid = _int_field(doc, "TLS.sdkappid")
    sig_time = _int_field(doc, "TLS.time")
    sig_expire = _int_field(doc, "TLS.expire")
    sig_identifier = doc.get("TLS.identifier")
    sig_b64 = doc.get("TLS.sig")
    userbuf = doc.get("TLS.userbuf")
    if not isinstance(sig_identifier, str) or not isinstance(sig_b64, str):
        raise UserSigError(E_UNPARSEABLE, "TLS.identifier or TLS.sig is missing")
    if userbuf is not None and not isinstance(userbuf, str):
        raise UserSigError(E_UNPARSEABLE, "TLS.userbuf is not a string")
    if sig_appid != sdkappid:
        raise UserSigError(E_APPID_MISMATCH, "SDKAppID in the request differs from the one in the UserSig")
    if sig_identifier != identifier:
        raise UserSigError(E_IDENTIFIER_MISMATCH, "identifier in the request differs from the one in the UserSig")
    if now_s > sig_time + sig_expire:
        raise UserSigError(E_EXPIRED, "UserSig expired")
    expected = _hmac_b64(key, _content(sig_identifier, sig_appid, sig_time, sig_expire, userbuf))
    if not hmac.compare_digest(expected.encode("ascii"), sig_b64.encode("utf-8", "replace")):
        raise UserSigError(E_BAD_SIGNATURE, "UserSig signature does not match the secret key")


class UserSigCache:
    """The admin's UserSig, generated once and renewed long before it expires.

    ``get()`` regenerates when the sig is older than ``renew_after_s`` (half its validity by default,
    so a clock skew of hours still leaves it valid) or when the clock went backwards. ``invalidate()``
    forces the next ``get()`` to regenerate: the delivery engine calls it on 70001/70052.
    """

    def __init__(
        self,
        sdkappid: int,
        identifier: str,
        secret: Secret,
        clock: Callable[[], float] = time.time,
        ttl_s: int = 86_400,
        renew_after_s: int = 43_200,
    ) -> None:
        if ttl_s <= 0 or not 0 < renew_after_s < ttl_s:
            raise ValueError("need 0 < renew_after_s < ttl_s")
        self.sdkappid = sdkappid
        self.identifier = identifier
        self._secret = secret
        self._clock = clock
        self.ttl_s = ttl_s
        self.renew_after_s = renew_after_s
        self._lock = threading.Lock()
        self._sig: str | None = None
        self._made_at_s = 0
        self.generations = 0

    def get(self) -> str:
        """Return a valid UserSig, regenerating it if it is due for renewal."""
        now_s = int(self._clock())
        with self._lock:
            age_s = now_s - self._made_at_s
            if self._sig is None or age_s >= self.renew_after_s or age_s < 0:
                self._sig = gen_usersig(self.sdkappid, self.identifier, self._secret.reveal(), self.ttl_s, now_s)
                self._made_at_s = now_s
                self.generations += 1
            return self._sig

    def invalidate(self) -> None:
        """Drop the cached sig so the next ``get()`` makes a fresh one."""
        with self._lock:
            self._sig = None

    def __repr__(self) -> str:
        return f"UserSigCache(sdkappid={self.sdkappid}, identifier={self.identifier!r}, ttl_s={self.ttl_s})"
