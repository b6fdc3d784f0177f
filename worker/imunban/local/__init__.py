"""Local Redis infrastructure: a redis-server process, the embedded default, a local cluster of workers."""
