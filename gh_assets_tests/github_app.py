"""A GitHub App for the App authentication tests: its id, RSA keys made for it (``make_keys``), an
App on a fake clock (``make_app``), and the check that no key or token leaks into a message."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gh_assets.github.app_auth import GitHubApp

APP_ID = "424242"
USER_AGENT = "gh-assets-tests/1 (app auth)"
T0 = 1_800_000_000.0  # the fake clock's start


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    pkcs1: str  # "BEGIN RSA PRIVATE KEY", as GitHub issues App keys
    pkcs8: str
    public: str
    other: str  # another RSA key: one the App does not have


def _pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def make_keys() -> Keys:
    """The App's key in both PEM forms, its public key, and another RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return Keys(
        pkcs1=_pem(key, serialization.PrivateFormat.TraditionalOpenSSL),
        pkcs8=_pem(key, serialization.PrivateFormat.PKCS8),
        public=public.decode(),
        other=_pem(other, serialization.PrivateFormat.TraditionalOpenSSL),
    )


def key_body_lines(pem: str) -> list[str]:
    """The base64 lines of a PEM: none of them may appear in any message."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def assert_no_secrets(text: str, *secrets: str) -> None:
    assert "\n" not in text, text
    for secret in filter(None, secrets):
        for piece in key_body_lines(secret) if "-----BEGIN" in secret else [secret]:
            assert piece not in text, f"a secret leaked into: {text}"


# -- an App on a fake clock ------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_app(
    url: str,
    keys: Keys,
    clock: Callable[[], float] = time.time,
    *,
    waits: list[float] | None = None,
    pem: str | None = None,
    **kwargs: Any,
) -> GitHubApp:
    app = GitHubApp(
        APP_ID, pem or keys.pkcs1, url, clock=clock, timeout=5, user_agent=USER_AGENT, **kwargs
    )
    app._http._sleep = (waits if waits is not None else []).append
    return app
