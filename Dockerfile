# One image for every Dagster process of gh_assets: the code location, webserver and daemon.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/gh_assets

COPY pyproject.toml README.md ./
COPY gh_assets ./gh_assets
# dagster-postgres follows the dagster release train pinned in pyproject.toml (1.13.N -> 0.29.N).
RUN pip install --no-cache-dir . "dagster-postgres==0.29.27"

COPY deploy/dagster.yaml deploy/workspace.yaml ./deploy/
RUN mkdir -p "$DAGSTER_HOME" && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
