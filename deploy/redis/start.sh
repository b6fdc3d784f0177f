#!/bin/sh
# Starts redis-server with its password read from the compose secret /run/secrets/redis_password.
# The password goes into a config file only root and redis can read (redis.conf includes it), never
# onto a command line or into an environment variable. Extra arguments go to redis-server.
set -eu
umask 077
password=$(cat /run/secrets/redis_password)
printf 'requirepass %s\nmasterauth %s\n' "$password" "$password" > /tmp/redis-auth.conf
chown redis:redis /tmp/redis-auth.conf
# The image's entrypoint drops root for the redis user before it runs the server.
exec docker-entrypoint.sh redis-server /etc/imunban/redis.conf "$@"
