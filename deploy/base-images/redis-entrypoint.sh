#!/bin/sh
# As the official image: `redis-server --flags` without a config file listens for other hosts.
if [ "${1:-}" = "redis-server" ] && [ "${2:-}" = "${2#/}" ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
