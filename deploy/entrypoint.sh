#!/bin/sh
# Every service's start in the image (Dockerfile). A GitHub App key given as a file on the host
# (GITHUB_APP_PRIVATE_KEY_FILE) reaches the containers as the compose secret
# /run/secrets/github_app_private_key: when GITHUB_APP_PRIVATE_KEY is unset, it names that file.
set -eu
secret=/run/secrets/github_app_private_key
if [ -z "${GITHUB_APP_PRIVATE_KEY:-}" ] && [ -s "$secret" ]; then
    export GITHUB_APP_PRIVATE_KEY="$secret"
fi
exec "$@"
