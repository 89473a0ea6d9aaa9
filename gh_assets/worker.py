"""The Celery app of the run workers: every host that runs page runs starts one
(``python -m gh_assets.worker``, or ``celery -A gh_assets.worker worker``).

The daemon's ``CeleryRunLauncher`` (``deploy/dagster.yaml``) turns each run into one Celery task
``execute_job`` on the broker; a worker takes it and executes the whole run in its own process
(the definitions' ``in_process_executor``), on the Dagster instance its ``DAGSTER_HOME`` names
(the shared PostgreSQL) and with the code and environment installed on its host. So every worker
needs what the code location has: ``REDIS_URL`` (else the crawl would write to
``localhost:6379``), the GitHub credentials, the ``GH_ASSETS_*`` settings, and
``GH_ASSETS_ASSET_STORAGE`` on storage every host reaches (else the frame written on one host is
missing on another). It also needs the daemon's broker and result backend
(``CELERY_BROKER_URL``, ``CELERY_RESULT_BACKEND``: a worker writing task states anywhere else
leaves run monitoring reading nothing, and every run fails) and the ``DAGSTER_POSTGRES_*``
variables ``deploy/dagster.yaml`` reads. A worker lacking any of these (``REQUIRED``) refuses to
start, ``python -m gh_assets.worker`` as ``celery -A gh_assets.worker worker``, with one line
saying which.

Delivery: ``task_acks_late`` with a prefetch of 1, so a task is acknowledged only when its run is
over and a worker holds one task at a time; the broker's visibility timeout
(``GH_ASSETS_CELERY_VISIBILITY_TIMEOUT``, 2 hours) must exceed the longest run
(``run_monitoring.max_runtime_seconds``, 1 hour), or Redis hands a long run's task to a second
worker. A worker killed mid-run leaves its task STARTED; the daemon's run monitoring fails the run
after ``max_runtime_seconds`` and ``run_retries`` launches it again on a live worker.

Task states never expire (``result_expires: 0``): run monitoring fails a started run whose state
it no longer finds (PENDING), and Celery's default keeps a state one day, shorter than the
longest runs. The price is one key per run kept in the broker's Redis (old
``celery-task-meta-*`` keys may be deleted once their runs are over).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from gh_assets.worker_checks import missing_extra, service_fault

try:
    from celery import signals
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_execute_job_task
except ModuleNotFoundError as missing:  # installed without the scale extra
    if __name__ != "__main__":
        raise
    print(missing_extra(missing), file=sys.stderr)
    sys.exit(2)

BROKER_VARIABLE = "CELERY_BROKER_URL"
BACKEND_VARIABLE = "CELERY_RESULT_BACKEND"
VISIBILITY_VARIABLE = "GH_ASSETS_CELERY_VISIBILITY_TIMEOUT"
DEFAULT_VISIBILITY_TIMEOUT = 7200  # seconds: twice deploy/dagster.yaml's max_runtime_seconds
QUEUE = "dagster"  # the CeleryRunLauncher's default queue
# The only broker tested: the delivery settings below (visibility timeout, BRPOP polling) are
# Kombu's Redis transport's; RabbitMQ would need others (consumer_timeout), so it is refused.
BROKER_SCHEMES = ("redis://", "rediss://", "redis+socket://")
BROKER_ONLY = "redis:// or rediss://; RabbitMQ and other brokers are not supported"
BRPOP_SECONDS = 10
RESULT_EXPIRES = 0  # task states never expire (as deploy/dagster.yaml's launcher)
POSTGRES = "the instance's PostgreSQL, which deploy/dagster.yaml reads"
# What a worker cannot run without, and why (the run would silently go elsewhere otherwise).
REQUIRED = {
    "REDIS_URL": "the data Redis every host writes to; unset, runs would write to localhost",
    "GH_ASSETS_ASSET_STORAGE": "asset storage every host reaches; unset, each host keeps its own",
    "DAGSTER_HOME": "the instance on PostgreSQL shared by every host",
    BROKER_VARIABLE: "the daemon's broker, where the runs wait",
    BACKEND_VARIABLE: "the daemon's result backend, where run monitoring reads each run's state",
    "DAGSTER_POSTGRES_HOST": POSTGRES,
    "DAGSTER_POSTGRES_PORT": POSTGRES,
    "DAGSTER_POSTGRES_USER": POSTGRES,
    "DAGSTER_POSTGRES_PASSWORD": POSTGRES,
    "DAGSTER_POSTGRES_DB": POSTGRES,
}


def missing_settings(environ: Mapping[str, str] | None = None) -> str | None:
    """One line naming what this worker lacks (or a visibility timeout it cannot use), or None
    when it may run."""
    environ = os.environ if environ is None else environ
    missing = [name for name in REQUIRED if not environ.get(name, "").strip()]
    if missing:
        grouped: dict[str, list[str]] = {}  # names sharing a reason are listed once
        for name in missing:
            grouped.setdefault(REQUIRED[name], []).append(name)
        listed = "; ".join(f"{', '.join(names)} ({why})" for why, names in grouped.items())
        return f"gh_assets worker: refusing to start without {listed}"
    if not environ[BROKER_VARIABLE].strip().startswith(BROKER_SCHEMES):
        return f"gh_assets worker: {BROKER_VARIABLE} must be a standalone Redis ({BROKER_ONLY})"
    raw = environ.get(VISIBILITY_VARIABLE, "").strip()
    if raw and not (raw.isdecimal() and int(raw) >= 1):
        return f"gh_assets worker: {VISIBILITY_VARIABLE}={raw!r}: expected a whole number >= 1"
    return None


def visibility_timeout(environ: Mapping[str, str]) -> int:
    """``GH_ASSETS_CELERY_VISIBILITY_TIMEOUT`` in seconds, else the default (a value that is not a
    whole number too: ``missing_settings`` refuses it before the worker starts)."""
    raw = environ.get(VISIBILITY_VARIABLE, "").strip()
    return int(raw) if raw.isdecimal() and int(raw) >= 1 else DEFAULT_VISIBILITY_TIMEOUT


def celery_config(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The worker's Celery settings (the launcher's are in deploy/dagster.yaml's config_source)."""
    environ = os.environ if environ is None else environ
    return {
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # A task's state, host and times stay in the backend: run monitoring reads the state, and
        # the result says which worker ran the run.
        "task_track_started": True,
        "result_extended": True,
        # ... for good: Celery's default (a day) would let a longer run's STARTED state expire,
        # and run monitoring fail the run (0: no expiry, on Redis a key without a TTL).
        "result_expires": RESULT_EXPIRES,
        "broker_transport_options": {
            "visibility_timeout": visibility_timeout(environ),
            # An idle worker's BRPOP waits this long before it is sent again. Redis serves the
            # longest-blocked client first, so idle workers take runs in turn; re-sent every
            # second (Kombu's default), the same worker tends to win every time. The price: an
            # idle worker takes up to this long to stop on SIGTERM.
            "polling_interval": BRPOP_SECONDS,
        },
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def build_app(environ: Mapping[str, str] | None = None):
    """The app, importable without the settings (``celery inspect`` and the tests import it);
    a worker lacking them refuses to start (``main``, ``_refuse_without_settings``)."""
    environ = os.environ if environ is None else environ
    app = make_app(
        app_args={
            "broker": environ.get(BROKER_VARIABLE) or None,
            "backend": environ.get(BACKEND_VARIABLE) or None,
            "include": [],
            "config_source": celery_config(environ),
            "task_default_queue": QUEUE,
        }
    )
    create_execute_job_task(app)
    return app


app = build_app()


def startup_problem() -> str | None:
    """``missing_settings``, then each service tried once, within seconds (``service_fault``):
    Celery alone would retry a dead broker for minutes and never check the others."""
    return missing_settings() or service_fault(os.environ, (BROKER_VARIABLE, BACKEND_VARIABLE))


@signals.worker_init.connect
def _refuse_without_settings(**_: object) -> None:
    """``celery -A gh_assets.worker worker`` started directly: the same refusal as ``main``."""
    problem = startup_problem()
    if problem:
        print(problem, file=sys.stderr, flush=True)
        os._exit(2)  # Celery's signal dispatch would log and swallow an exception


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gh_assets.worker [celery worker options]``: one run at a time by default."""
    problem = startup_problem()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    args = list(sys.argv[1:] if argv is None else argv)
    defaults = ["--queues", QUEUE, "--concurrency", "1", "--prefetch-multiplier", "1"]
    app.worker_main(["worker", "--loglevel", "INFO", *defaults, *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
