# One image for every process of gh_assets: the code location, webserver, daemon and Celery
# workers (docker-compose.yml). The `scale` extra adds dagster-celery and dagster-postgres, on the
# dagster release train pinned in pyproject.toml (1.13.N -> 0.29.N), with psycopg2.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DAGSTER_HOME=/opt/dagster/home
WORKDIR /opt/gh_assets

COPY pyproject.toml README.md ./
COPY gh_assets ./gh_assets
RUN pip install --no-cache-dir ".[scale]"

COPY deploy ./deploy
RUN mkdir -p "$DAGSTER_HOME" /opt/dagster/assets \
    && cp deploy/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
