"""The pooled HTTP session the client sends with: same-origin redirects, no ~/.netrc
credentials, and answers read to a bound (a body bigger than any users answer is not GitHub's)."""

from urllib.parse import urljoin

import requests

from gh_assets.github.errors import MalformedResponseError
from gh_assets.github.urls import origin_of, safe_url

API_VERSION = "2022-11-28"
MAX_BODY_BYTES = 10 * 1024 * 1024  # no users answer comes near this; anything bigger is not GitHub

# Failures a retry may cure: the connection, not the request, went wrong.
TRANSIENT = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class SameOriginSession(requests.Session):
    """Follows a redirect only within the origin that sent it: an answer from another host must
    not stand for the API's (an empty list from it would remove a page's stored users)."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        location = super().get_redirect_target(resp)
        if location is not None and origin_of(urljoin(resp.url, location)) != origin_of(resp.url):
            resp.close()
            raise MalformedResponseError(
                f"redirect leaves the API: {safe_url(urljoin(resp.url, location))}",
                url=safe_url(resp.url),
                status=resp.status_code,
                method=resp.request.method or "GET",
            )
        return location

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        # requests would fill a request without credentials from ~/.netrc (or $NETRC), and its
        # Basic auth would replace the Bearer header: the credentials are the settings' alone.
        if request.auth is None and self.auth is None:
            request.auth = _as_sent
        return super().prepare_request(request)

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        """A redirect (within the origin: ``get_redirect_target``) keeps the headers as sent,
        never taking credentials from ~/.netrc as requests would."""


def _as_sent(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Auth that changes nothing: the request goes with the headers the client set."""
    return request


def read_bounded(resp: requests.Response, safe: str, method: str) -> bytes:
    """The (decoded) body of a streamed answer, refused past MAX_BODY_BYTES: no OOM."""
    chunks: list[bytes] = []
    size = 0
    for chunk in resp.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise MalformedResponseError(
                f"body larger than {MAX_BODY_BYTES} bytes",
                url=safe,
                status=resp.status_code,
                method=method,
            )
        chunks.append(chunk)
    return b"".join(chunks)
