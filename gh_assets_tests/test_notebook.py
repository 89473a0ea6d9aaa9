"""``notebooks/explore.ipynb`` executed top to bottom on a real crawl (its results read back from
its own variables), its one-line refusals when there is nothing to explore, the committed file
free of outputs, and ``gh-assets notebook`` (``make notebook``) without starting JupyterLab."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from gh_assets import cli
from gh_assets.asset_storage import storage_resources
from gh_assets.defs.analysis.frame import github_users_frame
from gh_assets.defs.analysis.summary import github_user_summary
from gh_assets.partitions import PageWindow, add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.storage import RedisStore
from gh_assets_devtools import commands, services
from gh_assets_devtools.standin import Dataset

from .conftest import REPO, github_users

pytestmark = pytest.mark.e2e

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"
WINDOWS = [PageWindow.number(k, 100) for k in range(3)]
ASSETS = [github_users, github_users_frame, github_user_summary]
PLOTS = 7  # the figures the notebook draws, one image/png output each
KERNEL_TIMEOUT = 120  # seconds a cell may take
# Appended to the notebook by the tests: its results, from its own top-level variables.
RESULTS = """
import json

print(json.dumps({
    "rows": len(frame),
    "redis_rows": None if from_redis is None else len(from_redis),
    "frames_agree": frames_agree,
    "top_account": top_account,
    "top_by_repos": top_by_repos["login"].iloc[0],
    "summary_top_account": summary_top_account,
    "accounts_by_type": {str(k): int(v) for k, v in by_type["accounts"].items()},
    "pages": pages.index.tolist(),
    "share_304": pages["share_304"].tolist(),
    "failures": failures.to_dict("records"),
    "created_per_year": {str(year): int(n) for year, n in created_per_year.items()},
}))
"""


def execute(path: Path, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in a python3 kernel started in ``path`` (it inherits os.environ)."""
    client = NotebookClient(
        nb, kernel_name="python3", timeout=KERNEL_TIMEOUT, resources={"metadata": {"path": path}}
    )
    client.execute()  # starts the kernel and shuts it down, on failure too
    return nb


def run_notebook(path: Path) -> tuple[dict, nbformat.NotebookNode]:
    """The committed notebook and the results cell; the results and the executed notebook."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(RESULTS))
    execute(path, nb)
    (printed,) = [out for out in nb.cells[-1].outputs if out.output_type == "stream"]
    return json.loads(printed.text), nb


def outputs(nb: nbformat.NotebookNode, cell_id: str) -> list[nbformat.NotebookNode]:
    (cell,) = [cell for cell in nb.cells if cell.get("id") == cell_id]
    return cell.outputs


def printed(nb: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(out.text for out in outputs(nb, cell_id) if out.output_type == "stream")


def images(nb: nbformat.NotebookNode) -> dict[str, int]:
    """Cell id -> how many PNG images it showed."""
    counts = {
        cell.get("id"): sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))
        for cell in nb.cells
    }
    return {cell_id: count for cell_id, count in counts.items() if count}


def home_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Dagster instance as DAGSTER_HOME (of this process and of the kernel)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def notebook_env(redis_url: str, key_prefix: str, tmp_path: Path, monkeypatch) -> Path:
    """The kernel's settings: the test's Redis and key prefix, an empty instance."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("GH_ASSETS_KEY_PREFIX", key_prefix)
    return home_in(tmp_path, monkeypatch)


@pytest.fixture
def crawled(standin, redis_url: str, key_prefix: str, notebook_env: Path, tmp_path: Path) -> None:
    """Three pages (the first crawled twice: its details answer 304), then the frame and the
    summary, in a real instance; the Parquet files under ``tmp_path/assets``."""
    resources = {
        "github": GitHubResource(api_url=standin.url),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(tmp_path / "assets")),
    }
    with dg.DagsterInstance.get() as instance:
        add_missing_pages(instance, [window.key for window in WINDOWS])
        for window in [*WINDOWS, WINDOWS[0]]:
            assert dg.materialize([github_users], partition_key=window.key, instance=instance,
                                  resources=resources).success  # fmt: skip
        assert dg.materialize(ASSETS, selection=ASSETS[1:], instance=instance,
                              resources=resources).success  # fmt: skip


def test_the_notebook_explores_the_crawl_from_its_assets_and_redis(
    crawled, store: RedisStore, dataset: Dataset, tmp_path: Path
) -> None:
    results, nb = run_notebook(tmp_path)

    assert results["rows"] == results["redis_rows"] == store.user_count() > 150
    assert results["frames_agree"] is True  # Parquet and Redis: assert_frame_equal passed
    assert "The asset and Redis agree" in printed(nb, "compare")
    truth = dataset.truth(WINDOWS[0].first_id, WINDOWS[-1].last_id)
    assert len(truth) == results["rows"]

    def most(counter: str) -> str:
        user_id = min(truth, key=lambda i: (-int(truth[i][counter]), i))
        return truth[user_id]["login"]

    assert results["top_account"] == results["summary_top_account"] == most("followers")
    assert results["top_by_repos"] == most("public_repos")
    kinds = [user["type"] for user in truth.values()]
    assert results["accounts_by_type"] == {kind: kinds.count(kind) for kind in set(kinds)}
    years = Counter(
        str(datetime.fromtimestamp(int(u["created_at"]), UTC).year) for u in truth.values()
    )
    assert results["created_per_year"] == dict(sorted(years.items())) and len(years) > 1

    assert results["pages"] == [window.key for window in WINDOWS]
    assert results["share_304"] == [1.0, 0.0, 0.0]  # page 1 crawled again: every detail a 304
    assert results["failures"] == []
    assert "3 pages checked: all pass" in printed(nb, "failures")
    assert images(nb) == {
        "plot-distributions": 1, "plot-by-type": 1, "plot-top": 1,
        "correlations": 1, "plot-freshness": 1, "share-304": 1, "plot-created": 1,
    }  # fmt: skip
    assert sum(images(nb).values()) >= PLOTS
    errors = [out for cell in nb.cells for out in cell.get("outputs", [])
              if out.output_type == "error" or out.get("name") == "stderr"]  # fmt: skip
    assert errors == []  # no warning either

    # A user hash damaged since: the notebook still runs, says Redis cannot be typed, and the
    # page checks name the page.
    victim = min(store.page_members(WINDOWS[1].key))
    store.client.hset(store.user_key(victim), "followers", "many")
    results, nb = run_notebook(tmp_path)
    assert printed(nb, "load-redis") == (
        f"Redis holds a user the frame cannot type: {store.user_key(victim)} (user {victim}) "
        "has a non-integer 'followers': 'many'\n"
    )
    assert results["redis_rows"] is None and results["frames_agree"] is False
    assert [(f["page"], f["check"]) for f in results["failures"]] == [
        (WINDOWS[1].key, "counters_valid")
    ]
    assert str(victim) in results["failures"][0]["detail"]
    assert "3 pages checked: 1 fail" in printed(nb, "failures")
    assert results["top_account"] == most("followers")  # the asset itself is unharmed


def test_the_notebook_run_from_its_own_folder_finds_the_instance_make_demo_made(
    crawled, store: RedisStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jupyter and VS Code start the kernel in ``notebooks/``; after ``make demo`` the instance is
    ``.data/dagster_home`` in the project's folder, and DAGSTER_HOME is unset."""
    project = tmp_path / "project"
    shutil.copytree(os.environ["DAGSTER_HOME"], project / ".data" / "dagster_home")
    (project / "notebooks").mkdir()
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.delenv("GH_ASSETS_DATA_DIR", raising=False)
    results, _ = run_notebook(project / "notebooks")
    assert results["rows"] == results["redis_rows"] == store.user_count() > 150
    assert results["frames_agree"] is True
    assert results["pages"] == [window.key for window in WINDOWS]


def test_with_nothing_to_explore_the_loading_cells_say_so_in_one_line(
    notebook_env: Path, store: RedisStore, tmp_path: Path
) -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    index = {cell.get("id"): i for i, cell in enumerate(nb.cells)}
    client = NotebookClient(
        nb, kernel_name="python3", timeout=KERNEL_TIMEOUT,
        resources={"metadata": {"path": tmp_path}},
    )  # fmt: skip
    refusals = {}
    with client.setup_kernel():  # shuts the kernel down on the way out, whatever happened
        client.execute_cell(nb.cells[index["setup"]], index["setup"])
        for cell_id in ("load-frame", "load-redis"):
            with pytest.raises(CellExecutionError) as refused:
                client.execute_cell(nb.cells[index[cell_id]], index[cell_id])
            refusals[cell_id] = refused.value

    no_frame = (
        f"github_users_frame has no stored value in the Dagster instance at {notebook_env}: "
        "materialize it (`make demo`, or Materialize in the UI)"
    )
    no_users = f"{store!r} holds no users: crawl first (`make demo`)"
    for cell_id, message in [("load-frame", no_frame), ("load-redis", no_users)]:
        assert refusals[cell_id].ename == "ExploreError"
        assert refusals[cell_id].evalue == message
        assert f"\nExploreError: {message}\n" in str(refusals[cell_id])
        (error,) = outputs(nb, cell_id)
        assert error.output_type == "error"
        assert error.traceback == [f"ExploreError: {message}"]  # one line, no traceback


STRIP = (
    ".venv/bin/jupyter nbconvert --clear-output --ClearMetadataPreprocessor.enabled=True "
    "--ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec --inplace "
    "notebooks/explore.ipynb"
)


def test_the_committed_notebook_has_no_outputs() -> None:
    """Outputs, execution counts and kernel metadata stay out of the repository."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata == {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    }, f"strip it: {STRIP}"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    stripped = all(c.outputs == [] and c.execution_count is None for c in code)
    assert code and stripped, f"strip it: {STRIP}"
    assert all(cell.metadata == {} for cell in nb.cells), f"strip it: {STRIP}"
    assert len({cell.id for cell in nb.cells}) == len(nb.cells)  # the tests find cells by id


@pytest.fixture
def lab(monkeypatch, tmp_path: Path) -> dict:
    """``gh-assets notebook`` from the project's folder, its data under ``tmp_path``, with
    JupyterLab replaced by a recorder of its command, environment and Redis."""
    seen: dict = {}

    def foreground(command: list[str]) -> int:
        url = os.environ["REDIS_URL"]
        seen.update(command=command, home=os.environ["DAGSTER_HOME"], redis_url=url)
        seen["answers"] = services.redis_answers(url)
        return 0

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # main() would take pytest's
    monkeypatch.setattr(commands, "_foreground", foreground)
    monkeypatch.setattr(commands, "_missing", lambda module: False)  # JupyterLab: `notebook` extra
    monkeypatch.setenv("GH_ASSETS_DATA_DIR", str(tmp_path))
    for name in ("DAGSTER_HOME", "REDIS_URL", "GH_ASSETS_KEY_PREFIX"):
        monkeypatch.setenv(name, "")  # unset, restored afterwards
    return seen


def test_gh_assets_notebook_opens_jupyterlab_on_the_demo_data_and_the_shared_redis(
    lab: dict, tmp_path: Path, redis_url: str, monkeypatch
) -> None:
    assert cli.main(["notebook", "--no-browser", "--port", "8890"]) == 0
    as_root = ["--allow-root"] if os.geteuid() == 0 else []  # Jupyter refuses root otherwise
    assert lab["command"] == [
        sys.executable, "-m", "jupyterlab", "notebooks/explore.ipynb", *as_root,
        "--no-browser", "--port", "8890",
    ]  # fmt: skip
    assert lab["home"] == str(tmp_path / "dagster_home")  # where demo and dev keep the instance
    assert lab["answers"]  # the project's Redis, up while JupyterLab ran
    assert (tmp_path / "redis" / "pid").exists() is False  # and stopped by the last user
    assert not services.redis_answers(lab["redis_url"])

    # What the environment names is used as it is: no server started.
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    assert cli.main(["notebook"]) == 0
    assert lab["command"] == [sys.executable, "-m", "jupyterlab", "notebooks/explore.ipynb",
                              *as_root]  # fmt: skip
    assert (lab["home"], lab["redis_url"]) == (str(tmp_path / "elsewhere"), redis_url)


@pytest.mark.parametrize(
    ("redis", "jupyterlab", "line"),
    [
        ("redis://127.0.0.1:1/0", True, "REDIS_URL='redis://127.0.0.1:1/0': nothing answers"),
        ("", False, "JupyterLab is not installed here: run `make notebook`"),
    ],
)
def test_gh_assets_notebook_refuses_in_one_line_before_starting_anything(
    lab: dict, monkeypatch, capsys, redis: str, jupyterlab: bool, line: str
) -> None:
    monkeypatch.setenv("REDIS_URL", redis)
    monkeypatch.setattr(commands, "_missing", lambda module: not jupyterlab)
    assert cli.main(["notebook"]) == 2
    (message,) = capsys.readouterr().err.splitlines()
    assert message.startswith(f"gh-assets: {line}")
    assert lab == {}  # JupyterLab never started
