""""Sign in with Hugging Face", without a browser: the app as a Space with `hf_oauth: true` runs it
(gradio's real OAuth routes, authlib's client) against a local OpenID Connect provider that checks
what Hugging Face's checks. Each hop of the authorization-code flow is walked by hand with httpx.

gradio's `session` cookie is Secure (a Space is https) and every server here is http on 127.0.0.1, so
httpx's jar would never send it back: `SignIn` carries it by hand (tests/oauth_fixtures.py says more).
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

pytest.register_assert_rewrite("oauth_fixtures")  # its asserts explain themselves too (imported before pytest_plugins loads it)
from oauth_fixtures import SignIn, login_label, session_data, set_cookie, sign_in  # noqa: E402

pytest_plugins = ["oauth_fixtures"]  # the provider and the app, once for the run (tests/oauth_fixtures.py)
slow = pytest.mark.slow  # the tests that start the app

OTHER_CLIENT, OTHER_SECRET, OTHER_CALLBACK = "other-app", "other-secret", "http://127.0.0.1:9/login/callback"


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def code_for(provider, client_id: str = OTHER_CLIENT, redirect_uri: str = OTHER_CALLBACK, **extra: str) -> str:
    """An authorization code, asked for as a relying party does (the provider approves at once)."""
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "scope": "openid profile",
             "state": "s-1", "nonce": "n-1", **extra}
    answer = httpx.get(f"{provider.url}/oauth/authorize", params=query)
    assert answer.status_code == 302, answer.text
    back = parse_qs(urlsplit(answer.headers["location"]).query)
    assert back["state"] == ["s-1"], back
    return back["code"][0]


def redeem(provider, code: str, auth: dict[str, str] | None = None, **form: str) -> httpx.Response:
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": OTHER_CALLBACK, **form}
    return httpx.post(f"{provider.url}/oauth/token", data=body, headers=basic(OTHER_CLIENT, OTHER_SECRET) if auth is None else auth)


@pytest.fixture
def other_client(oidc_provider):
    """A second registered OAuth app, for talking to the provider directly."""
    oidc_provider.add_client(OTHER_CLIENT, OTHER_SECRET, [OTHER_CALLBACK])
    return oidc_provider


# --- the provider on its own: it checks what Hugging Face's checks ------------------------------------


def test_the_provider_publishes_discovery_and_keys_that_verify_its_id_tokens(other_client):
    provider = other_client
    metadata = httpx.get(f"{provider.url}/.well-known/openid-configuration").json()
    assert metadata["issuer"] == provider.url
    for endpoint, path in [("authorization_endpoint", "/oauth/authorize"), ("token_endpoint", "/oauth/token"),
                           ("userinfo_endpoint", "/oauth/userinfo"), ("jwks_uri", "/oauth/jwks")]:
        assert metadata[endpoint] == provider.url + path
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post"]

    token = redeem(provider, code_for(provider)).json()
    assert token["token_type"] == "bearer" and token["scope"] == "openid profile" and token["expires_in"] > 0
    keys = KeySet.import_key_set(httpx.get(metadata["jwks_uri"]).json())
    id_token = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert id_token.header["kid"] == keys.keys[0].kid
    claims = id_token.claims
    assert (claims["iss"], claims["aud"], claims["nonce"], claims["preferred_username"]) == (provider.url, OTHER_CLIENT, "n-1", "ada")

    info = httpx.get(metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}).json()
    assert {k: info[k] for k in ("sub", "name", "preferred_username", "profile")} == {
        "sub": claims["sub"], "name": "Ada Lovelace", "preferred_username": "ada", "profile": "https://huggingface.co/ada"}
    assert info["picture"].startswith(provider.url + "/avatars/")
    assert httpx.get(info["picture"]).headers["content-type"] == "image/png"


def test_the_token_endpoint_refuses_an_unknown_client_or_a_wrong_secret_with_401(other_client):
    provider = other_client
    for auth in (basic("nobody", OTHER_SECRET), basic(OTHER_CLIENT, "wrong"), {}):
        answer = redeem(provider, code_for(provider), auth=auth)
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client", (auth, answer.text)
        assert "www-authenticate" in answer.headers
    # client_secret_post is accepted too, as Hugging Face does; the basic one is what authlib sends.
    posted = redeem(provider, code_for(provider), auth={}, client_id=OTHER_CLIENT, client_secret=OTHER_SECRET)
    assert posted.status_code == 200, posted.text
    assert [r.client_auth for r in provider.received("/oauth/token")] == [
        "client_secret_basic", "client_secret_basic", None, "client_secret_post"]


def test_a_code_is_good_once_for_its_client_and_redirect_uri_and_not_after_it_expires(other_client):
    provider = other_client
    code = code_for(provider)
    first = redeem(provider, code)
    assert first.status_code == 200
    access = first.json()["access_token"]
    userinfo = f"{provider.url}/oauth/userinfo"
    assert httpx.get(userinfo, headers={"Authorization": f"Bearer {access}"}).status_code == 200
    replay = redeem(provider, code)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    # A replayed code withdraws what it gave (RFC 6749 §4.1.2).
    assert httpx.get(userinfo, headers={"Authorization": f"Bearer {access}"}).status_code == 401

    moved = redeem(provider, code_for(provider), redirect_uri=OTHER_CALLBACK + "?other=1")
    assert (moved.status_code, moved.json()["error"]) == (400, "invalid_grant")

    provider.add_client("third-app", "third-secret", [OTHER_CALLBACK])
    stolen = redeem(provider, code_for(provider), auth=basic("third-app", "third-secret"))
    assert (stolen.status_code, stolen.json()["error"]) == (400, "invalid_grant")

    late = code_for(provider)
    provider.advance(provider.code_ttl_s + 1)
    expired = redeem(provider, late)
    assert (expired.status_code, expired.json()["error"]) == (400, "invalid_grant")
    assert "expired" in expired.json()["error_description"]


def test_authorize_never_redirects_to_an_unregistered_uri_and_says_no_with_an_error_redirect(other_client):
    provider = other_client
    base = {"response_type": "code", "client_id": OTHER_CLIENT, "redirect_uri": OTHER_CALLBACK, "scope": "openid profile", "state": "s"}
    for wrong in ({"client_id": "nobody"}, {"redirect_uri": "http://127.0.0.1:9/elsewhere"}, {"redirect_uri": "https://evil.example/cb"}):
        answer = httpx.get(f"{provider.url}/oauth/authorize", params={**base, **wrong})
        assert answer.status_code == 400 and "location" not in answer.headers, wrong

    for wrong, error in [({"response_type": "token"}, "unsupported_response_type"), ({"scope": "profile"}, "invalid_scope"),
                         ({"scope": "openid admin"}, "invalid_scope")]:
        answer = httpx.get(f"{provider.url}/oauth/authorize", params={**base, **wrong})
        back = parse_qs(urlsplit(answer.headers["location"]).query)
        assert (answer.status_code, back["error"], back["state"]) == (302, [error], ["s"]), wrong

    provider.approve = False
    answer = httpx.get(f"{provider.url}/oauth/authorize", params=base)
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["access_denied"]


def test_pkce_is_checked_when_the_client_uses_it(other_client):
    provider = other_client
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    code = code_for(provider, code_challenge=challenge, code_challenge_method="S256")
    assert redeem(provider, code, code_verifier="w" * 50).json()["error"] == "invalid_grant"
    code = code_for(provider, code_challenge=challenge, code_challenge_method="S256")
    assert redeem(provider, code, code_verifier=verifier).status_code == 200


# --- the app: gradio's routes against the provider ------------------------------------------------------


@slow
def test_login_sends_the_visitor_to_the_provider_with_client_id_state_nonce_and_the_apps_callback(oauth_app, oidc_provider):
    flow = SignIn(oauth_app.url, oidc_provider)
    query = flow.start()
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [oidc_provider.client_id]
    assert query["scope"] == ["openid profile"]
    assert len(query["state"][0]) >= 20 and len(query["nonce"][0]) >= 20
    callback = urlsplit(query["redirect_uri"][0])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == oauth_app.url + "login/callback"
    assert parse_qs(callback.query) == {"_target_url": ["/"]}
    # The state is kept in gradio's session cookie, which is Secure, HttpOnly and SameSite=None.
    header = next(h for h in flow.login.headers.get_list("set-cookie") if h.startswith("session="))
    assert {"secure", "httponly", "samesite=none"} <= {part.strip().lower() for part in header.split(";")}
    assert any(key.startswith("_state_huggingface_") for key in flow.session)


@slow
def test_the_whole_flow_signs_ada_in_and_the_page_names_her(oauth_app, oidc_provider):
    flow = SignIn(oauth_app.url, oidc_provider)
    query = flow.start()
    callback_url = flow.approve()
    assert callback_url.startswith(query["redirect_uri"][0] + "&")  # the provider appends to the registered URI
    assert parse_qs(urlsplit(callback_url).query)["state"] == query["state"]
    finished = flow.finish(callback_url)
    assert (finished.status_code, finished.headers["location"]) == (307, "/")

    info = flow.session["oauth_info"]
    assert {k: info["userinfo"][k] for k in ("preferred_username", "name", "profile")} == {
        "preferred_username": "ada", "name": "Ada Lovelace", "profile": "https://huggingface.co/ada"}
    assert info["userinfo"]["nonce"] == query["nonce"][0]  # authlib checked the id_token's nonce, iss, aud and signature
    assert info["access_token"].startswith("hf_oauth_") and info["expires_at"] > 0
    assert not any(key.startswith("_state_") for key in flow.session)  # the state is spent
    # What authlib did: discovery, then the code redeemed with client_secret_basic at the exact
    # redirect_uri of the authorization request, then the keys to check the id_token.
    token_requests = oidc_provider.received("/oauth/token")
    assert len(token_requests) == 1 and token_requests[0].status == 200
    assert token_requests[0].client_auth == "client_secret_basic"
    assert token_requests[0].form["redirect_uri"] == query["redirect_uri"][0]
    # The keys to check the id_token: fetched once per app process (authlib keeps them), in whichever test signed in first.
    assert "/oauth/jwks" in oidc_provider.paths_ever
    # Browsers drop a cookie over 4096 bytes without a word: the signed-in session must stay under.
    assert len(next(h for h in finished.headers.get_list("set-cookie") if h.startswith("session="))) < 4096


@slow
@pytest.mark.parametrize("language, label", [("en-US", "Sign out (ada)"), ("es-ES", "Cerrar sesión (ada)")])
def test_the_page_names_the_signed_in_visitor_in_their_language(oauth_app, oidc_provider, language, label):
    cookies = sign_in(oauth_app.url, oidc_provider)
    assert login_label(oauth_app.url, cookies, language) == label
    # A stranger gets the sign-in label (an I18n key the browser translates).
    assert "sign_in" in login_label(oauth_app.url, {}, language)


@slow
def test_sign_in_helper_signs_in_whoever_the_provider_is_told(oauth_app, oidc_provider):
    cookies = sign_in(oauth_app.url, oidc_provider, {"preferred_username": "grace", "name": "Grace Hopper"})
    assert session_data(cookies["session"])["oauth_info"]["userinfo"]["name"] == "Grace Hopper"
    assert oidc_provider.user["preferred_username"] == "ada"  # put back
    # The page's own handlers see her session: the login button's load event reads it.
    assert login_label(oauth_app.url, cookies) != login_label(oauth_app.url, {})


@slow
@pytest.mark.parametrize("forgery", ["another state", "no session cookie", "the attacker's own code and state"])
def test_a_forged_or_mismatched_state_signs_nobody_in(oauth_app, oidc_provider, forgery):
    victim = SignIn(oauth_app.url, oidc_provider)
    victim.start()
    callback_url = victim.approve()
    if forgery == "another state":
        parts = urlsplit(callback_url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        query["state"] = "forged" + query["state"][6:]
        callback_url = parts._replace(query=urlencode(query)).geturl()
    elif forgery == "no session cookie":  # the callback opened in a browser that never started this login
        victim.cookies.pop("session")
    else:  # login CSRF: the attacker starts a login of their own and makes the victim's browser finish it
        attacker = SignIn(oauth_app.url, oidc_provider)
        attacker.start()
        callback_url = attacker.approve()
    answer = victim.finish(callback_url)
    assert answer.status_code == 307
    assert answer.headers["location"].startswith("/login/huggingface?_nb_redirects=1")  # gradio starts over
    assert "oauth_info" not in victim.session
    assert oidc_provider.received("/oauth/token") == []  # the code was never even redeemed


@slow
def test_a_replayed_callback_is_refused_by_the_provider_and_signs_nobody_in(oauth_app, oidc_provider):
    # gradio's session lives in the cookie: the cookie from before the callback still holds the state,
    # so only the provider (a code is good once) stops a replay of the same callback.
    flow = SignIn(oauth_app.url, oidc_provider)
    flow.start()
    callback_url = flow.approve()
    before = dict(flow.cookies)
    flow.finish(callback_url)
    replay = SignIn(oauth_app.url, oidc_provider)
    replay.cookies = before
    answer = replay.finish(callback_url)
    assert answer.status_code >= 400 and "oauth_info" not in replay.session
    assert [r.status for r in oidc_provider.received("/oauth/token")] == [200, 400]


@slow
def test_logout_clears_the_sign_in(oauth_app, oidc_provider):
    cookies = sign_in(oauth_app.url, oidc_provider)
    flow = SignIn(oauth_app.url, oidc_provider)
    flow.cookies = dict(cookies)
    answer = flow.get(oauth_app.url + "logout", params={"_target_url": "/"})
    assert (answer.status_code, answer.headers["location"]) == (307, "/")
    assert set_cookie(answer) is not None and "oauth_info" not in flow.session
    assert "sign_in" in login_label(oauth_app.url, flow.cookies)


@slow
def test_after_sign_in_the_visitor_stays_on_this_site(oauth_app, oidc_provider):
    flow = SignIn(oauth_app.url, oidc_provider, target="https://evil.example/phish?x=1")
    flow.start()
    answer = flow.finish(flow.approve())
    assert answer.headers["location"] == "/phish?x=1"  # gradio keeps the path only: no open redirect
    assert flow.session["oauth_info"]["userinfo"]["preferred_username"] == "ada"


@slow
def test_a_provider_that_refuses_the_apps_secret_signs_nobody_in(oauth_app, oidc_provider):
    oidc_provider.set_secret("rotated-at-the-provider")
    flow = SignIn(oauth_app.url, oidc_provider)
    flow.start()
    answer = flow.finish(flow.approve())
    assert answer.status_code >= 400 and "oauth_info" not in flow.session
    assert [(r.status, r.client_auth) for r in oidc_provider.received("/oauth/token")] == [(401, "client_secret_basic")]


@slow
def test_a_visitor_who_refuses_is_not_signed_in(oauth_app, oidc_provider):
    oidc_provider.approve = False
    flow = SignIn(oauth_app.url, oidc_provider)
    flow.start()
    callback_url = flow.approve()
    assert parse_qs(urlsplit(callback_url).query)["error"] == ["access_denied"]
    answer = flow.finish(callback_url)
    assert "oauth_info" not in flow.session
    assert oidc_provider.received("/oauth/token") == []
    # gradio alone lets authlib's OAuthError through as a 500; tryon/web/sign_in.py sends the visitor back.
    assert answer.status_code in (302, 303, 307) and urlsplit(answer.headers["location"]).path == "/"


@slow
def test_session_payload_is_plain_signed_json(oauth_app, oidc_provider):
    """What the app keeps for a signed-in visitor (so quotas and history can key on `sub`)."""
    cookies = sign_in(oauth_app.url, oidc_provider)
    payload, timestamp, signature = cookies["session"].split(".")
    assert json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))["oauth_info"]["userinfo"]["sub"]
    assert timestamp and signature
    tampered = dict(cookies, session=base64.b64encode(json.dumps(
        {"oauth_info": {"userinfo": {"preferred_username": "mallory"}}}).encode()).decode() + f".{timestamp}.{signature}")
    assert "mallory" not in login_label(oauth_app.url, tampered)  # a forged cookie is not a sign-in


@slow
def test_the_login_button_s_check_is_neither_an_api_endpoint_nor_an_mcp_tool(oauth_app):
    from test_mcp import with_session

    named = httpx.get(f"{oauth_app.url}gradio_api/info", timeout=30).json()["named_endpoints"]
    assert "/try_on" in named and not any("login" in name for name in named)
    tools = {tool.name for tool in with_session(oauth_app.url, lambda s: s.list_tools()).tools}
    # On a Space gradio prefixes each tool with the Space's name ("tryon_try_on").
    assert any(name.endswith("try_on") for name in tools) and not any("login" in name for name in tools)
