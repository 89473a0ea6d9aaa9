"""The Celery app of the run workers: every host that runs page runs starts one
(``python -m gh_assets.worker``, or ``celery -A gh_assets.worker worker``).

The daemon's ``CeleryRunLauncher`` (``deploy/dagster.yaml``) turns each run into one Celery task
``execute_job`` on the broker; a worker takes it and executes the whole run in its own process
(the definitions' ``in_process_executor``), on the Dagster instance its ``DAGSTER_HOME`` names
(the shared PostgreSQL) and with the code and environment installed on its host. So every worker
needs what the code location has: ``REDIS_URL`` (else the crawl would write to
``localhost:6379``), the GitHub credentials, the ``GH_ASSETS_*`` settings, and
``GH_ASSETS_ASSET_STORAGE`` on storage every host reaches (else the frame written on one host is
missing on another). A worker without ``REDIS_URL``, ``GH_ASSETS_ASSET_STORAGE`` or
``DAGSTER_HOME`` refuses to start, with one line saying which.

Delivery: ``task_acks_late`` with a prefetch of 1, so a task is acknowledged only when its run is
over and a worker holds one task at a time; the broker's visibility timeout
(``GH_ASSETS_CELERY_VISIBILITY_TIMEOUT``, 2 hours) must exceed the longest run
(``run_monitoring.max_runtime_seconds``, 1 hour), or Redis hands a long run's task to a second
worker. A worker killed mid-run leaves its task STARTED; the daemon's run monitoring fails the run
after ``max_runtime_seconds`` and ``run_retries`` launches it again on a live worker.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from celery import signals
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_execute_job_task

BROKER_VARIABLE = "CELERY_BROKER_URL"
BACKEND_VARIABLE = "CELERY_RESULT_BACKEND"
VISIBILITY_VARIABLE = "GH_ASSETS_CELERY_VISIBILITY_TIMEOUT"
DEFAULT_VISIBILITY_TIMEOUT = 7200  # seconds: twice deploy/dagster.yaml's max_runtime_seconds
QUEUE = "dagster"  # the CeleryRunLauncher's default queue
BRPOP_SECONDS = 10
# What a worker cannot run without, and why (the run would silently go elsewhere otherwise).
REQUIRED = {
    "REDIS_URL": "the data Redis every host writes to (unset, runs would write to localhost)",
    "GH_ASSETS_ASSET_STORAGE": "asset storage every host reaches (unset, each host keeps its own)",
    "DAGSTER_HOME": "the instance on PostgreSQL shared by every host",
}


def missing_settings(environ: Mapping[str, str] | None = None) -> str | None:
    """One line naming what this worker lacks, or None when it may run."""
    environ = os.environ if environ is None else environ
    missing = [name for name in REQUIRED if not environ.get(name, "").strip()]
    if not missing:
        return None
    reasons = "; ".join(f"{name}: {REQUIRED[name]}" for name in missing)
    return f"gh_assets worker: refusing to start without {', '.join(missing)} ({reasons})"


def celery_config(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The worker's Celery settings (the launcher's are in deploy/dagster.yaml's config_source)."""
    environ = os.environ if environ is None else environ
    visibility = int(environ.get(VISIBILITY_VARIABLE) or DEFAULT_VISIBILITY_TIMEOUT)
    return {
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # A task's state, host and times stay in the backend: run monitoring reads the state, and
        # the result says which worker ran the run.
        "task_track_started": True,
        "result_extended": True,
        "broker_transport_options": {
            "visibility_timeout": visibility,
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
    environ = os.environ if environ is None else environ
    app = make_app(
        app_args={
            "broker": environ.get(BROKER_VARIABLE) or "redis://localhost:6379/0",
            "backend": environ.get(BACKEND_VARIABLE) or environ.get(BROKER_VARIABLE),
            "include": [],
            "config_source": celery_config(environ),
            "task_default_queue": QUEUE,
        }
    )
    create_execute_job_task(app)
    return app


app = build_app()


@signals.worker_init.connect
def _refuse_without_settings(**_: object) -> None:
    """``celery -A gh_assets.worker worker`` started directly: the same refusal as ``main``."""
    problem = missing_settings()
    if problem:
        print(problem, file=sys.stderr, flush=True)
        os._exit(2)  # Celery's signal dispatch would log and swallow an exception


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gh_assets.worker [celery worker options]``: one run at a time by default."""
    problem = missing_settings()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if not os.environ.get(BROKER_VARIABLE):
        print(f"gh_assets worker: refusing to start without {BROKER_VARIABLE}", file=sys.stderr)
        return 2
    args = list(sys.argv[1:] if argv is None else argv)
    defaults = ["--queues", QUEUE, "--concurrency", "1", "--prefetch-multiplier", "1"]
    app.worker_main(["worker", "--loglevel", "INFO", *defaults, *args])
    return 0


if __name__ == "__main__":
    sys.exit(main())
