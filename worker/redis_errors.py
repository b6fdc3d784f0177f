"""Translate redis-py errors into :class:`~worker.errors.StoreError` where they enter our code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from worker.errors import StoreError


@contextmanager
def translated(operation: str) -> Iterator[None]:
    """Run a block of Redis calls; a redis-py error becomes StoreError naming the operation."""
    try:
        yield
    except redis.exceptions.RedisError as exc:
        raise StoreError(f"redis: {operation} failed: {exc}") from exc
