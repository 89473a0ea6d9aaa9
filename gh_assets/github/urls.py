"""URLs the client handles: where they point (origin), what credentials they carry, and how to
show them without those credentials."""

import re
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_SECRET_PARAM = re.compile(r"token|secret|key|sig|pass|auth|code", re.IGNORECASE)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (default port filled in, credentials left out)."""
    parts = urlsplit(url)
    return parts.scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(parts.scheme)


def url_credentials(url: str) -> tuple[str, str] | None:
    """The user and password an http(s) URL carries (sent as Basic auth), or None."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return None
    return unquote(parts.username or ""), unquote(parts.password or "")


def safe_url(url: str) -> str:
    """``url`` without userinfo, fragment, or the values of credential-like query parameters."""
    parts = urlsplit(url)
    query = urlencode(
        [
            (key, "***" if _SECRET_PARAM.search(key) else value)
            for key, value in parse_qsl(parts.query, keep_blank_values=True)
        ],
        safe="*",
    )
    netloc = parts.netloc.rpartition("@")[2]
    if parts.scheme and url.startswith(f"{parts.scheme}://"):  # keeps unix:///path whole
        return f"{parts.scheme}://{netloc}{urlunsplit(('', '', parts.path, query, ''))}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
