# One image for every process of gh_assets: the code location, webserver, daemon and Celery
# workers (docker-compose.yml). The `scale` extra adds dagster-celery and dagster-postgres, on the
# dagster release train pinned in pyproject.toml (1.13.N -> 0.29.N), with psycopg2. Two stages:
# the first installs uv.lock's versions into a virtualenv (without pip) and drops what no process
# runs; the second (`runtime`, the default target) keeps only that virtualenv and deploy/'s runtime
# files (no cache, no uv, no build tools, no CA bundle). It installs the runtime package alone
# (`/src`, never devtools/); the `standin` target adds the devtools package (the offline GitHub
# stand-in) on top of it, for docker-compose.yml's `standin` service.
#
# Build arguments (all optional):
#   GH_ASSETS_EXTRAS  the extras installed (default: scale); `scale,s3` adds s3fs for s3:// asset
#                     storage (GH_ASSETS_ASSET_STORAGE=s3://bucket/prefix)
#   PIP_INDEX_URL     a PyPI mirror (pip and uv)
# Behind a TLS-intercepting proxy: put the proxy's CA certificate (PEM, *.crt or *.pem) in
# deploy/certs/ (ignored by git); pip and uv in the first stage trust it beside pip's bundle.
FROM python:3.11-slim AS build
ARG GH_ASSETS_EXTRAS=scale
ARG PIP_INDEX_URL=
ARG UV_VERSION=0.13.9
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1 \
    PIP_CERT=/tmp/ca-bundle.pem SSL_CERT_FILE=/tmp/ca-bundle.pem
# The CA bundle pip and uv use here: pip's own, plus deploy/certs/*.crt|*.pem if any.
COPY deploy/certs/ /tmp/certs/
RUN set -eu; \
    cat "$(python -c 'import pip._vendor.certifi as c; print(c.where())')" > /tmp/ca-bundle.pem; \
    find /tmp/certs -type f \( -name '*.crt' -o -name '*.pem' \) -exec cat {} + >> /tmp/ca-bundle.pem; \
    python -m pip install --quiet "uv==${UV_VERSION}"; \
    python -m venv --without-pip /opt/venv
# The dependencies, at uv.lock's versions (a layer kept while the lock and extras are unchanged),
# then what no process runs dropped: the libraries' own tests, headers, the UI's source maps,
# Arrow Flight (an RPC framework; Parquet and pandas do not load it).
# The devtools' pyproject.toml: the lock covers the uv workspace (no extra installed here names it).
COPY pyproject.toml uv.lock /src/
COPY devtools/pyproject.toml /src/devtools/
RUN set -eu; \
    extras=$(echo "$GH_ASSETS_EXTRAS" | tr ',' '\n' | sed -n 's/^ *\([a-z0-9_-]\{1,\}\) *$/--extra \1/p'); \
    uv export --project /src --locked --no-emit-project --no-emit-workspace --no-hashes $extras \
        -o /tmp/requirements.txt; \
    uv pip install --python /opt/venv/bin/python ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} \
        -r /tmp/requirements.txt; \
    cd "$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"; \
    rm -rf pandas/tests pyarrow/tests pyarrow/include pyarrow/src matplotlib/tests \
        pyarrow/libarrow_flight.so* pyarrow/libarrow_python_flight.so* pyarrow/_flight*.so; \
    find numpy -type d -name tests -prune -exec rm -rf {} +; \
    find . \( -name '*.map' -o -name '*.pyx' -o -name '*.pxd' -o -name '*.pyi' -o -name '*.h' \) \
        -type f -delete
COPY README.md /src/
COPY gh_assets /src/gh_assets
RUN uv pip install --python /opt/venv/bin/python ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} \
        --no-deps /src

# The devtools package alone (its dependencies: the runtime's, already installed), for `standin`.
FROM build AS devtools
COPY devtools /src/devtools
RUN uv pip install --python /opt/venv/bin/python ${PIP_INDEX_URL:+--index-url "$PIP_INDEX_URL"} \
        --no-deps --target /opt/devtools /src/devtools

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home \
    PATH=/opt/venv/bin:$PATH
COPY --from=build /opt/venv /opt/venv
WORKDIR /opt/gh_assets
COPY deploy/dagster.yaml deploy/daemon.sh deploy/workspace.yaml deploy/entrypoint.sh ./deploy/
RUN mkdir -p "$DAGSTER_HOME" /opt/dagster/assets \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
ENTRYPOINT ["/bin/sh", "deploy/entrypoint.sh"]

# The runtime plus the offline GitHub stand-in (python -m gh_assets_devtools.standin).
FROM runtime AS standin
COPY --from=devtools /opt/devtools /opt/devtools
ENV PYTHONPATH=/opt/devtools

# The default target: the runtime alone.
FROM runtime
