# One image for every process of gh_assets: the code location, webserver, daemon, Celery workers
# and the stand-in (docker-compose.yml). The `scale` extra adds dagster-celery and
# dagster-postgres, on the dagster release train pinned in pyproject.toml (1.13.N -> 0.29.N),
# with psycopg2. Two stages: the first installs into a virtualenv and drops what no process runs
# (pip, the libraries' own tests, headers, the UI's source maps); the second keeps only that
# virtualenv and deploy/'s runtime files (no pip cache, no build tools, no CA bundle).
#
# Build arguments (all optional):
#   GH_ASSETS_EXTRAS  the extras installed (default: scale); `scale,s3` adds s3fs for s3:// asset
#                     storage (GH_ASSETS_ASSET_STORAGE=s3://bucket/prefix)
#   PIP_INDEX_URL     a PyPI mirror
# Behind a TLS-intercepting proxy: put the proxy's CA certificate (PEM, *.crt or *.pem) in
# deploy/certs/ (ignored by git); pip in the first stage trusts it beside its own bundle.
FROM python:3.11-slim AS build
ARG GH_ASSETS_EXTRAS=scale
ARG PIP_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
COPY deploy/certs/ /tmp/certs/
COPY pyproject.toml README.md /src/
COPY gh_assets /src/gh_assets
RUN set -eu; \
    extra=$(find /tmp/certs -type f \( -name '*.crt' -o -name '*.pem' \)); \
    if [ -n "$extra" ]; then \
        bundle=$(/opt/venv/bin/python -c 'import pip._vendor.certifi as c; print(c.where())'); \
        cat "$bundle" $extra > /tmp/ca-bundle.pem; \
        export PIP_CERT=/tmp/ca-bundle.pem; \
    fi; \
    /opt/venv/bin/pip install ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} \
        "/src[${GH_ASSETS_EXTRAS}]"; \
    /opt/venv/bin/pip uninstall -y pip setuptools wheel >/dev/null 2>&1 || true; \
    rm -f /tmp/ca-bundle.pem; \
    cd "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    rm -rf pandas/tests pyarrow/tests pyarrow/include pyarrow/src matplotlib/tests; \
    find numpy -type d -name tests -prune -exec rm -rf {} +; \
    find . \( -name '*.map' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.h' \) \
        -type f -delete

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/gh_assets
COPY deploy/dagster.yaml deploy/daemon.sh deploy/workspace.yaml deploy/entrypoint.sh ./deploy/
RUN mkdir -p "$DAGSTER_HOME" /opt/dagster/assets \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
ENTRYPOINT ["/bin/sh", "deploy/entrypoint.sh"]
