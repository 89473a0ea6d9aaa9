"""What a run worker (``gh_assets.worker``) tries once, within seconds, before it takes runs: its
settings, the data Redis (``REDIS_URL``) and the budget's (``GH_ASSETS_BUDGET_REDIS_URL``, when
set), the broker, the result backend and the instance's PostgreSQL. Left to Celery, a dead broker
is retried for minutes and the others are found only by the first run, which fails; here the
first fault is one line naming its variable."""

from __future__ import annotations

from collections.abc import Mapping

from gh_assets import preflight
from gh_assets.settings import Settings, SettingsError

TIMEOUT = 3.0  # seconds per service, as the preflight of the local commands
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")  # what redis-py opens; others are not tried
POSTGRES = {  # deploy/dagster.yaml's postgres_db field -> the variable it reads
    "host": "DAGSTER_POSTGRES_HOST",
    "port": "DAGSTER_POSTGRES_PORT",
    "user": "DAGSTER_POSTGRES_USER",
    "password": "DAGSTER_POSTGRES_PASSWORD",
    "dbname": "DAGSTER_POSTGRES_DB",
}
SCALE_EXTRA = "pip install 'gh_assets[scale]'"


def missing_extra(error: ModuleNotFoundError) -> str:
    """A module of the ``scale`` extra (Celery, dagster-celery, psycopg2) is not installed."""
    return f"gh_assets worker: {error.name} is not installed here: {SCALE_EXTRA}"


def service_fault(environ: Mapping[str, str], redis_variables: tuple[str, ...]) -> str | None:
    """One line for the first of the worker's settings and services that does not answer as it
    must (each named by its variable: ``REDIS_URL``, ``GH_ASSETS_BUDGET_REDIS_URL``,
    ``redis_variables`` such as the broker's and the result backend's, the
    ``DAGSTER_POSTGRES_*`` ones), or None."""
    try:
        settings = Settings.from_env(environ)
        preflight.check_redises(settings, TIMEOUT)  # the data's, and the budget's own if set
        for variable in redis_variables:
            url = environ.get(variable, "").strip()
            if url.startswith(REDIS_SCHEMES):
                preflight.check_redis(url, TIMEOUT, prefix=None, variable=variable)
        check_postgres(environ)
    except SettingsError as error:  # PreflightError included
        return f"gh_assets worker: {error}"
    except ModuleNotFoundError as error:
        return missing_extra(error)
    return None


def check_postgres(environ: Mapping[str, str]) -> None:
    """Connect once to the instance's PostgreSQL as deploy/dagster.yaml does (psycopg2);
    ``SettingsError`` naming the variables, never the password, when it does not answer."""
    import psycopg2

    values = {field: environ.get(variable, "").strip() for field, variable in POSTGRES.items()}
    try:
        psycopg2.connect(**values, connect_timeout=int(TIMEOUT)).close()
    except psycopg2.Error as error:
        text = " ".join(str(error).split())
        if values["password"]:
            text = text.replace(values["password"], "***")
        shown = ", ".join(f"{POSTGRES[f]}={values[f]!r}" for f in POSTGRES if f != "password")
        raise SettingsError(f"{shown}: PostgreSQL refused or did not answer ({text})") from None
