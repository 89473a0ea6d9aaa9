"""GitHub App authentication without a server: the private key loader (``load_private_key``),
whose refusals quote no key, and the App's JWT: its claims, its signature and its caching on a
fake clock, and the App's configuration errors.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gh_assets.github.app_auth import GitHubApp, load_private_key
from gh_assets.github.errors import GitHubConfigError

from .github_app import APP_ID, FakeClock, Keys, assert_no_secrets, key_body_lines, make_app

# -- load_private_key --------------------------------------------------------------------------


@pytest.mark.unit
def test_load_private_key_from_text(keys: Keys) -> None:
    assert load_private_key(keys.pkcs1) == keys.pkcs1
    assert load_private_key(keys.pkcs8) == keys.pkcs8
    assert load_private_key(f"\n  {keys.pkcs1}\n\n") == keys.pkcs1
    # One line with literal \n, as .env files and CI secrets often hold it.
    assert load_private_key(keys.pkcs1.strip().replace("\n", "\\n")) == keys.pkcs1


@pytest.mark.unit
def test_load_private_key_from_a_file(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "my-app.2024-01-01.private-key.pem"
    path.write_text(keys.pkcs1)
    assert load_private_key(str(path)) == keys.pkcs1
    assert load_private_key(f"  {path}\n") == keys.pkcs1


@pytest.mark.unit
@pytest.mark.parametrize(
    "case",
    ["empty", "garbage", "body_only", "truncated", "public", "ec", "encrypted", "missing"],
)
def test_load_private_key_refusals_quote_no_key(keys: Keys, case: str, tmp_path: Path) -> None:
    body = "\n".join(key_body_lines(keys.pkcs1))
    ec_key = ec.generate_private_key(ec.SECP256R1())
    values = {
        "empty": "   ",
        "garbage": "not-a-key-at-all",
        "body_only": body,  # the key without its BEGIN/END lines
        "truncated": keys.pkcs1[: len(keys.pkcs1) // 2],
        "public": keys.public,
        "ec": ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "encrypted": rsa.generate_private_key(65537, 2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        .decode(),
        "missing": str(tmp_path / "nowhere.pem"),
    }
    with pytest.raises(GitHubConfigError) as refused:
        load_private_key(values[case])
    message = str(refused.value)
    assert message.startswith("GITHUB_APP_PRIVATE_KEY"), message
    assert_no_secrets(message, keys.pkcs1, keys.public, values[case] if case != "missing" else "")
    chained = refused.value.__cause__ or (
        None if refused.value.__suppress_context__ else refused.value.__context__
    )
    assert chained is None  # a chained exception could carry the value
    expected = {
        "empty": "GITHUB_APP_PRIVATE_KEY is empty",
        "garbage": "not a PEM private key nor a readable file (read as a path: No such file",
        "body_only": "not a PEM private key nor a readable file",
        "truncated": "not a PEM private key nor a readable file",
        "public": "GITHUB_APP_PRIVATE_KEY: a public key; the App signs with its private key",
        "ec": "GITHUB_APP_PRIVATE_KEY: an EC key, not RSA (GitHub App keys are RSA)",
        "encrypted": "GITHUB_APP_PRIVATE_KEY: the key is encrypted with a passphrase",
        "missing": "(read as a path: No such file or directory)",
    }
    assert expected[case] in message


@pytest.mark.unit
def test_load_private_key_refuses_a_file_that_is_no_key(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    with pytest.raises(GitHubConfigError, match=r"notes\.txt'\): not a PEM RSA private key$"):
        load_private_key(str(path))
    with pytest.raises(GitHubConfigError, match=r"read as a path: Is a directory"):
        load_private_key(str(tmp_path))


# -- the JWT -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_jwt_claims_verify_with_the_public_key(keys: Keys) -> None:
    clock = FakeClock(time.time())
    app = make_app("https://api.github.com", keys, clock)
    token = app.jwt()
    assert pyjwt.get_unverified_header(token)["alg"] == "RS256"
    claims = pyjwt.decode(token, keys.public, algorithms=["RS256"], issuer=APP_ID)
    now = int(clock.now)
    assert claims == {"iat": now - 60, "exp": now + 540, "iss": APP_ID}
    assert claims["exp"] - claims["iat"] <= 600  # GitHub's limit: ten minutes
    with pytest.raises(pyjwt.InvalidSignatureError):
        other_public = serialization.load_pem_private_key(keys.other.encode(), None).public_key()
        pyjwt.decode(token, other_public, algorithms=["RS256"])  # type: ignore[arg-type]


@pytest.mark.unit
def test_jwt_is_cached_until_a_minute_is_left(keys: Keys) -> None:
    clock = FakeClock()
    app = make_app("https://api.github.com", keys, clock)
    first = app.jwt()
    clock.now += 479  # 61 s left
    assert app.jwt() == first
    clock.now += 2  # 59 s left
    second = app.jwt()
    assert second != first
    unchecked = {"verify_exp": False, "verify_iat": False}  # the fake clock is in the future
    claims = pyjwt.decode(second, keys.public, algorithms=["RS256"], options=unchecked)
    assert claims["iat"] == int(clock.now) - 60 and claims["exp"] == int(clock.now) + 540


@pytest.mark.unit
def test_repr_identity_and_config_errors(keys: Keys) -> None:
    app = make_app("https://ghe.example.com/api/v3/", keys)
    assert repr(app) == "GitHubApp(app_id='424242', api_url='https://ghe.example.com/api/v3')"
    assert app.identity(17) == "installation:17"
    with pytest.raises(GitHubConfigError, match="GITHUB_APP_ID"):
        GitHubApp("42 42", keys.pkcs1, "https://api.github.com")
    with pytest.raises(GitHubConfigError, match="expected an http"):
        GitHubApp(APP_ID, keys.pkcs1, "ftp://example.com")
    with pytest.raises(GitHubConfigError, match="carries a user and password") as refused:
        GitHubApp(APP_ID, keys.pkcs1, "https://me:hunter2@api.github.com")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(GitHubConfigError) as refused:
        GitHubApp(APP_ID, keys.pkcs1[:300], "https://api.github.com")
    assert_no_secrets(str(refused.value), keys.pkcs1)
