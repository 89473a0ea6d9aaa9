"""Configuring GraphQL detail mode: its endpoint follows the API URL, it needs a token against
GitHub, the resource passes the mode on, and the asset crawls in the mode the settings name.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from gh_assets.asset_storage import storage_resources
from gh_assets.github import GitHubClient, GitHubConfigError, graphql_endpoint
from gh_assets.partitions import add_missing_pages
from gh_assets.resources import GitHubResource, RedisResource
from gh_assets.settings import Settings
from gh_assets.storage import RedisStore
from gh_assets_devtools.standin import Dataset, StandinServer

from .conftest import github_users
from .graphql_crawled import TOKEN, WINDOW, hashes, routes, stable, truth

# -- configuration ---------------------------------------------------------------------------


@pytest.mark.unit
def test_the_graphql_endpoint_follows_the_api_url() -> None:
    assert graphql_endpoint("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_endpoint("https://api.github.com/") == "https://api.github.com/graphql"
    assert graphql_endpoint("https://ghe.example/api/v3") == "https://ghe.example/api/graphql"
    assert graphql_endpoint("http://127.0.0.1:8080") == "http://127.0.0.1:8080/graphql"
    assert graphql_endpoint("http://proxy/github/") == "http://proxy/github/graphql"
    custom = GitHubClient("http://127.0.0.1:1", graphql_url="http://127.0.0.1:2/gql")
    assert custom.graphql_url == "http://127.0.0.1:2/gql"
    assert custom.detail_mode == "rest"


@pytest.mark.unit
@pytest.mark.parametrize("api_url", ["https://api.github.com", "https://ghe.example/api/v3"])
def test_anonymous_graphql_against_github_is_a_configuration_error(api_url: str) -> None:
    with pytest.raises(GitHubConfigError, match="needs a token"):
        GitHubClient(api_url, detail_mode="graphql")
    with GitHubClient(api_url, TOKEN, detail_mode="graphql") as client:
        assert client.detail_mode == "graphql"
        assert TOKEN not in repr(client)
    GitHubClient(api_url).close()  # REST stays anonymous-friendly
    with pytest.raises(GitHubConfigError, match="detail_mode must be one of rest, graphql"):
        GitHubClient(api_url, TOKEN, detail_mode="soap")  # type: ignore[arg-type]


@pytest.mark.unit
def test_the_resource_passes_the_mode_on() -> None:
    resource = GitHubResource(api_url="http://127.0.0.1:1", detail_mode="graphql")
    with resource.get_client() as client:
        assert (client.detail_mode, client.graphql_url) == ("graphql", "http://127.0.0.1:1/graphql")
    with GitHubResource().get_client() as client:
        assert client.detail_mode == "rest"
    with pytest.raises(ValueError, match="detail_mode"):
        GitHubResource(detail_mode="soap")


@pytest.mark.integration
@pytest.mark.slow
def test_the_asset_crawls_in_the_mode_the_settings_name(
    standin: StandinServer,
    dataset: Dataset,
    store: RedisStore,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    settings = Settings.from_env(
        {"GH_ASSETS_DETAIL_MODE": "graphql", "GITHUB_API_URL": standin.url}
    )
    resources = {
        "github": GitHubResource.from_settings(settings),
        "redis": RedisResource(url=redis_url, key_prefix=key_prefix),
        **storage_resources(str(tmp_path / "storage")),
    }
    with dg.instance_for_test() as instance:
        add_missing_pages(instance, [WINDOW.key])
        result = dg.materialize(
            [github_users], partition_key=WINDOW.key, instance=instance, resources=resources
        )
    assert result.success
    assert routes(standin)["graphql"] == 1
    assert stable(hashes(store, WINDOW)) == truth(dataset, WINDOW)
