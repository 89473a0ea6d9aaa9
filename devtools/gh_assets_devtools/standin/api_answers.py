"""How the stand-in answers an API request, in the order GitHub checks it: identified, let
through the secondary limits (or refused, uncharged), delayed, failed, charged to its primary
budget and answered (REST or GraphQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from gh_assets_devtools.standin import rest_api
from gh_assets_devtools.standin.accounts import Identity, bad_credentials
from gh_assets_devtools.standin.faults import edge_error
from gh_assets_devtools.standin.graphql_api import RateLimitState
from gh_assets_devtools.standin.graphql_cost import Prepared
from gh_assets_devtools.standin.http_server import Reply, Request, json_body, json_reply
from gh_assets_devtools.standin.rate_limit import (
    Budget,
    api_headers,
    rate_limit_body,
    rate_limited,
)
from gh_assets_devtools.standin.request_counts import GRAPHQL_PATH
from gh_assets_devtools.standin.secondary_limits import Admission, secondary_refusal

if TYPE_CHECKING:
    from gh_assets_devtools.standin.server import StandinServer

USER_AGENT_DOCS = (
    "https://docs.github.com/rest/overview/resources-in-the-rest-api#user-agent-required"
)


def answer_api(server: StandinServer, request: Request) -> Reply:
    """Identify the account, let the request through its secondary limits, answer it."""
    parts = urlsplit(request.target)
    identity = server.accounts.identify(request.headers.get("Authorization"), request.client_ip)
    if parts.path == "/app" or parts.path.startswith("/app/"):  # outside the budgets
        server.faults.delay()
        return server.apps.answer(
            request, parts.path, identity, rest_api.base_url(request, server.url)
        )
    graphql = parts.path == GRAPHQL_PATH and request.method == "POST"
    if identity.kind in ("jwt", "expired", "revoked"):
        server.faults.delay()
        return bad_credentials(graphql=graphql)
    admission = server.secondary.admit(identity.account, "graphql" if graphql else "rest")
    if admission.refused:  # uncharged: the primary budget is only shown
        server.faults.delay()
        limiter = server.graphql_limiter if graphql else server.rate_limiter
        limit = None if graphql else _limit_of(server, identity)
        budget, _ = limiter.spend(identity.account, 0, limit=limit)
        status = server.secondary.config()["secondary_status"]
        return secondary_refusal(admission, budget, status, authenticated=identity.authenticated)
    try:
        return _admitted(server, request, identity, admission)
    finally:
        server.secondary.release(admission)


def _admitted(
    server: StandinServer, request: Request, identity: Identity, admission: Admission
) -> Reply:
    server.faults.delay()
    if not request.headers.get("User-Agent"):
        return json_reply(
            403,
            {
                "message": "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header",
                "documentation_url": USER_AGENT_DOCS,
            },
        )
    if server.faults.unavailable():
        return edge_error(503)
    parts = urlsplit(request.target)
    credential = request.headers.get("Authorization")
    who, limit = identity.account, _limit_of(server, identity)
    if admission.kind == "graphql":
        return _graphql(server, request, identity, admission)
    budget: Budget | None = None
    if parts.path == "/rate_limit":  # free, even when exhausted; its body is the budget
        budget, _ = server.rate_limiter.spend(who, 0, limit=limit)
        graphql, _ = server.graphql_limiter.spend(who, 0)
        status, payload, extra = 200, rate_limit_body(budget, graphql), {}
    elif parts.path == "/user":
        base = rest_api.base_url(request, server.url)
        status, payload = server.accounts.authenticated_user(identity, base)
        extra = {}
    else:
        base = rest_api.base_url(request, server.url)
        query = parse_qs(parts.query)
        status, payload, ids, extra = rest_api.resource(server.dataset, parts.path, query, base)
        if server.faults.fails(ids):
            return edge_error(502)
    body = json_body(payload)
    etag = rest_api.etag(credential or "anonymous", body) if status == 200 else None
    if_none_match = request.headers.get("If-None-Match")
    not_modified = etag is not None and rest_api.etag_matches(if_none_match, etag)
    if budget is None:
        budget, allowed = server.rate_limiter.spend(who, 0 if not_modified else 1, limit=limit)
        if not allowed:
            admission.primary_refused = True
            return rate_limited(budget, "user" if credential else request.client_ip)
    headers = api_headers(budget, authenticated=credential is not None) | extra
    if etag is not None:
        headers["ETag"] = etag
    if not_modified:
        return Reply(304, headers)
    return Reply(status, headers | {"Content-Type": "application/json; charset=utf-8"}, body)


def _graphql(
    server: StandinServer, request: Request, identity: Identity, admission: Admission
) -> Reply:
    """``POST /graphql``: validate and price the query, fail it if it names a failing ID,
    charge its points (RATE_LIMITED, still HTTP 200, when they do not fit), then run it.

    Anonymous requests are served (GitHub itself answers them 401), each IP its own budget.
    """
    who, authenticated = identity.account, identity.authenticated
    prepared = server.graphql.prepare(request.body)
    if not isinstance(prepared, Prepared):
        budget, _ = server.graphql_limiter.spend(who, 0)
        reply = json_reply(prepared.status, prepared.payload)
        if prepared.status == 200:
            reply.headers |= api_headers(budget, authenticated=authenticated, graphql=True)
        return reply
    if server.faults.fails(prepared.database_ids):
        return edge_error(502)
    budget, allowed = server.graphql_limiter.spend(who, prepared.cost, whole=True)
    headers = api_headers(budget, authenticated=authenticated, graphql=True)
    if not allowed:
        admission.primary_refused = True
        by = "user" if authenticated else request.client_ip
        payload: dict[str, Any] = {
            "data": None,
            "errors": [{"type": "RATE_LIMITED", "message": f"API rate limit exceeded for {by}."}],
        }
    else:
        state = RateLimitState(budget, prepared.cost, prepared.node_count)
        payload = server.graphql.execute(prepared, state)
    reply = json_reply(200, payload)
    reply.headers |= headers
    return reply


def _limit_of(server: StandinServer, identity: Identity) -> int | None:
    """The REST budget of an installation, when it has one of its own size (GraphQL
    points are the same for every account)."""
    return server.installation_limit if identity.kind == "installation" else None
