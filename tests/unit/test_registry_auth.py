"""Pure parts of registry auth: challenges, X-Registry-Auth, token requests, the cache."""

from __future__ import annotations

import base64
import json

import pytest

from dockyard import errors as domain
from dockyard.registry.auth import (
    AuthConfig,
    Challenge,
    Token,
    TokenCache,
    TokenKey,
    basic_authorization,
    decode_registry_auth,
    merge_scopes,
    parse_challenges,
    parse_token_response,
    repository_scope,
    token_request,
)
from dockyard.registry.errors import InvalidAuthHeader, RegistryProtocolError

# Challenges ----------------------------------------------------------------------


def test_basic_challenge() -> None:
    assert parse_challenges('Basic realm="Registry Realm"') == (
        Challenge(scheme="basic", params={"realm": "Registry Realm"}),
    )


def test_bearer_challenge_with_comma_in_quoted_scope() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push",error="insufficient_scope"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert dict(challenge.params) == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:samalba/my-app:pull,push",
        "error": "insufficient_scope",
    }
    assert challenge.realm == "https://auth.docker.io/token"


def test_several_challenges_in_one_header_and_in_several() -> None:
    found = parse_challenges(['Basic realm="a", Bearer realm="b", service=s', "Negotiate"])
    assert found == (
        Challenge(scheme="basic", params={"realm": "a"}),
        Challenge(scheme="bearer", params={"realm": "b", "service": "s"}),
        Challenge(scheme="negotiate", params={}),
    )


def test_escapes_spaces_and_case() -> None:
    (challenge,) = parse_challenges('BEARER Realm = "a \\"quoted\\" realm" ,  Service=x')
    assert challenge == Challenge(scheme="bearer", params={"realm": 'a "quoted" realm', "service": "x"})


def test_malformed_challenges_do_not_raise() -> None:
    assert parse_challenges("") == ()
    assert parse_challenges('=x, Bearer realm="unterminated') == (
        Challenge(scheme="x", params={}),
        Challenge(scheme="bearer", params={"realm": "unterminated"}),
    )


# X-Registry-Auth -----------------------------------------------------------------


def _encode(value: object, *, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(json.dumps(value).encode()).decode()
    return text if padded else text.rstrip("=")


def test_decode_padded_and_unpadded() -> None:
    value = {"username": "alice", "password": "p?>s", "serveraddress": "127.0.0.1:5000"}
    expected = AuthConfig(username="alice", password="p?>s", server_address="127.0.0.1:5000")
    padded = _encode(value)
    assert padded.endswith("=")  # the case worth testing
    assert decode_registry_auth(padded) == expected
    assert decode_registry_auth(_encode(value, padded=False)) == expected
    # The standard alphabet, which some clients send.
    assert decode_registry_auth(base64.b64encode(json.dumps(value).encode()).decode()) == expected


def test_decode_keys_case_insensitively_like_go() -> None:
    header = _encode({"IdentityToken": "refresh", "RegistryToken": "bearer", "Email": "a@b", "auth": "ignored"})
    assert decode_registry_auth(header) == AuthConfig(identity_token="refresh", registry_token="bearer", email="a@b")


@pytest.mark.parametrize("header", [None, "", "  ", _encode({}), _encode(None), _encode({"serveraddress": "x"})])
def test_decode_without_credentials_is_none(header: str | None) -> None:
    assert decode_registry_auth(header) is None


@pytest.mark.parametrize(
    "header", ["!!!", base64.urlsafe_b64encode(b"not json").decode(), _encode([1]), _encode({"username": 5})]
)
def test_decode_malformed_is_invalid_parameter(header: str) -> None:
    with pytest.raises(InvalidAuthHeader) as info:
        decode_registry_auth(header)
    assert info.value.message.startswith("invalid X-Registry-Auth header: ")
    assert isinstance(info.value, domain.InvalidParameter) and info.value.status == 400


def test_basic_authorization_and_cache_key() -> None:
    assert basic_authorization("alice", "wonderland") == "Basic YWxpY2U6d29uZGVybGFuZA=="
    a = AuthConfig(username="alice", password="x")
    assert a.cache_key() == AuthConfig(username="alice", password="x").cache_key()
    assert a.cache_key() != AuthConfig(username="alice", password="y").cache_key()


# Scopes and token requests -------------------------------------------------------


def test_scopes() -> None:
    assert repository_scope("team/app", ["pull", "push"]) == "repository:team/app:pull,push"
    assert merge_scopes(
        ["repository:b:pull"], ["repository:a:push", "repository:b:push"], "repository:a:pull".split()
    ) == ("repository:a:pull,push", "repository:b:pull,push")
    assert merge_scopes(["nonsense", "repository:x:"]) == ()


BEARER = Challenge(scheme="bearer", params={"realm": "http://127.0.0.1:9/token", "service": "reg"})


def test_token_request_get_with_basic() -> None:
    request = token_request(BEARER, ["repository:a/b:pull,push"], AuthConfig(username="u", password="p"))
    assert request.method == "GET"
    assert request.url == (
        "http://127.0.0.1:9/token?service=reg&scope=repository%3Aa%2Fb%3Apull%2Cpush&account=u"
    )
    assert request.headers == {"Authorization": "Basic dTpw"}
    assert request.form is None


def test_token_request_anonymous_offline_and_existing_query() -> None:
    challenge = Challenge(scheme="bearer", params={"realm": "https://h/token?x=1"})
    request = token_request(challenge, ["repository:a:pull", "repository:b:pull"], None, offline=True)
    assert request.url == (
        "https://h/token?x=1&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull"
        "&offline_token=true&client_id=docker"
    )
    assert request.headers == {}


def test_token_request_refresh_grant_by_post() -> None:
    auth = AuthConfig(username="u", password="p", identity_token="rt")
    request = token_request(BEARER, ["repository:a:pull", "repository:b:push"], auth)
    assert (request.method, request.url, dict(request.headers)) == ("POST", "http://127.0.0.1:9/token", {})
    assert request.form == {
        "grant_type": "refresh_token",
        "refresh_token": "rt",
        "client_id": "docker",
        "service": "reg",
        "scope": "repository:a:pull repository:b:push",
    }


def test_parse_token_response() -> None:
    assert parse_token_response(b'{"token":"t","expires_in":300}', 10.0) == Token(value="t", expires_at=310.0)
    assert parse_token_response(b'{"access_token":"a","token":"t","refresh_token":"r"}', 0.0) == Token(
        value="a", expires_at=60.0, refresh_token="r"
    )
    # Lifetimes below distribution's minimum are read as 60 s.
    assert parse_token_response(b'{"token":"t","expires_in":5}', 0.0).expires_at == 60.0
    for body in (b"{}", b"[]", b"nope", b'{"token":""}'):
        with pytest.raises(RegistryProtocolError):
            parse_token_response(body, 0.0)


def test_token_cache_expiry_and_limit() -> None:
    cache = TokenCache(limit=2)
    keys = [TokenKey(registry="r", realm="x", service="s", scopes=(f"repository:{i}:pull",), credentials="")
            for i in range(3)]  # fmt: skip
    cache.put(keys[0], Token(value="a", expires_at=100.0))
    assert cache.get(keys[0], 50.0) == Token(value="a", expires_at=100.0)
    assert cache.get(keys[0], 96.0) is None  # within the margin: refreshed early
    assert len(cache) == 0
    for key in keys:
        cache.put(key, Token(value="v", expires_at=1e9))
    assert len(cache) == 2 and cache.get(keys[0], 0.0) is None and cache.get(keys[2], 0.0) is not None
