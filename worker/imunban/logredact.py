"""Keep the admin UserSig out of logs and tracebacks.

The UserSig travels in the query string, and urllib3 logs the full request URL at DEBUG level;
requests/urllib3 exceptions quote it too. A UserSig is a bearer credential for the whole app for a
day, so every place that may print a URL goes through :func:`redact`.
"""

from __future__ import annotations

import contextlib
import logging
import re

__all__ = ["REDACTED", "RedactUserSig", "install_redaction", "redact", "redact_url", "scrub_exception"]

REDACTED = "REDACTED"

#: ``usersig=...`` in a query string, and ``'usersig': '...'`` in a repr'd dict of params.
_QUERY_RE = re.compile(r"(usersig=)[^&\s'\"]+", re.IGNORECASE)
_MAPPING_RE = re.compile(r"""(['"]usersig['"]\s*:\s*['"])[^'"]+""", re.IGNORECASE)
#: The password of a URL's user info (``redis://user:PASSWORD@host``), and a ``password=`` query option.
_URL_PASSWORD_RE = re.compile(r"(://[^:/@?#\s]*:)[^/?#\s]*@")
_QUERY_PASSWORD_RE = re.compile(r"([?&;](?:sentinel_)?password=)[^&\s]+", re.IGNORECASE)

#: Loggers that print request URLs. Logger-level filters only see records logged to that exact
#: logger (not its children), hence the list.
REDACTED_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.util.retry",
    "requests",
    "imunban.api",
)


def redact(text: str) -> str:
    """Replace the value of every ``usersig`` in ``text`` with REDACTED."""
    if "usersig" not in text.lower():
        return text
    text = _QUERY_RE.sub(rf"\g<1>{REDACTED}", text)
    return _MAPPING_RE.sub(rf"\g<1>{REDACTED}", text)


def redact_url(url: str) -> str:
    """``url`` without its password: in the user info (``redis://:REDACTED@host``) and in a ``password=`` option."""
    return _QUERY_PASSWORD_RE.sub(rf"\g<1>{REDACTED}", _URL_PASSWORD_RE.sub(rf"\g<1>{REDACTED}@", url))


class RedactUserSig(logging.Filter):
    """A filter that rewrites the record's message (and traceback text) without the UserSig.

    It never drops a record. Attached to a handler it covers every record the handler emits;
    attached to a logger it covers records logged to that very logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error reporting
            return True
        clean = redact(message)
        if clean != message:
            # Freeze the formatted message: the args held the secret.
            record.msg = clean
            record.args = None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            clean_text = redact(text)
            if clean_text != text:
                # Formatter.format uses exc_text as-is when it is set; formatters that call
                # formatException() themselves see the scrubbed exception objects instead.
                record.exc_text = clean_text
                scrub_exception(record.exc_info[1])
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _attach(target: logging.Logger | logging.Handler, flt: RedactUserSig) -> None:
    if not any(isinstance(f, RedactUserSig) for f in target.filters):
        target.addFilter(flt)


def install_redaction(root: logging.Logger | None = None) -> RedactUserSig:
    """Attach the filter to the root logger's current handlers and to the URL-logging loggers.

    Call it after logging is configured (handlers added later are not covered). Idempotent.
    """
    flt = RedactUserSig()
    root = root or logging.getLogger()
    for handler in root.handlers:
        _attach(handler, flt)
    for name in REDACTED_LOGGERS:
        _attach(logging.getLogger(name), flt)
    return flt


def scrub_exception(exc: BaseException) -> None:
    """Redact the UserSig from ``exc``, the exceptions in its args, and its cause/context chain.

    requests and urllib3 put the full URL in their messages (``Max retries exceeded with url:
    /v4/...?usersig=...``); we chain them with ``raise ... from exc``, so a logged traceback would
    otherwise print the secret.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        new_args: list[object] = []
        for arg in current.args:
            if isinstance(arg, str):
                new_args.append(redact(arg))
            else:
                if isinstance(arg, BaseException):
                    stack.append(arg)
                new_args.append(arg)
        current.args = tuple(new_args)
        url = getattr(current, "url", None)
        if isinstance(url, str):
            with contextlib.suppress(AttributeError):  # read-only properties stay as they are
                current.url = redact(url)  # type: ignore[attr-defined]
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                stack.append(linked)
