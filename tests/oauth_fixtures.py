""""Sign in with Hugging Face" for tests: a local OpenID Connect provider, the app configured the way a
Space with `hf_oauth: true` configures it, and `sign_in`, which walks the authorization-code flow by
hand and hands back the app's session cookie.

Use from a test module:

    pytest_plugins = ["oauth_fixtures"]  # the fixtures, once for the whole run (see below)
    from oauth_fixtures import sign_in, run_event

    def test_something(oauth_app, oidc_provider):
        cookies = sign_in(oauth_app.url, oidc_provider, {"preferred_username": "grace"})
        with httpx.Client(base_url=oauth_app.url, cookies=cookies) as client:
            ...  # requests as the signed-in visitor "grace"
        # gradio_client: Client(oauth_app.url, headers={"Cookie": cookie_header(cookies)})

Why the cookie is carried by hand: gradio's SessionMiddleware sets `session` with `Secure` (and
SameSite=None), as it must on a Space, which is served over https. httpx's cookie jar follows the
cookie rules and never sends a Secure cookie to an http:// URL, and every test server is plain http on
127.0.0.1. So `sign_in` reads the cookie from Set-Cookie and hands it back as a plain name -> value
mapping, which httpx then sends like any cookie it was given directly. The app is not changed.

The fixtures are session-scoped where starting costs time (one provider, one app) and the provider is
reset for each test (default user "ada", approvals on, empty records). Take them with `pytest_plugins`,
not `from oauth_fixtures import oauth_app`: pytest keeps a fixture imported into a module as that
module's own, so every module importing it would start its own provider and app.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from conftest import start_app, stop_app
from oidc_server import OidcProvider

SPACE_ID = "tryon-test/tryon"


def space_env(provider: OidcProvider, scopes: str = "openid profile") -> dict[str, str]:
    """What Spaces sets for `hf_oauth: true` (minus SPACE_HOST: with it gradio sends https://<host>/login/callback
    as the redirect URI, which no local server answers). gradio's `utils.get_space()` needs both SYSTEM=spaces
    and SPACE_ID to use the real OAuth routes; otherwise it mocks them with the machine's own HF login."""
    return {**provider.env(scopes), "SYSTEM": "spaces", "SPACE_ID": SPACE_ID}


@pytest.fixture(scope="session")
def oidc_provider_session():
    provider = OidcProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def oidc_provider(oidc_provider_session) -> OidcProvider:
    """The local OpenID Connect provider, reset: user "ada" signs in and approves at once, nothing recorded."""
    oidc_provider_session.reset()
    return oidc_provider_session


@pytest.fixture(scope="session")
def oauth_app(tmp_path_factory, oidc_provider_session):
    """The app as a Space with `hf_oauth: true` runs it (its own data dir), against the local provider.
    The provider must be up first: gradio reads OPENID_PROVIDER_URL and the rest when it is imported."""
    app = start_app(tmp_path_factory.mktemp("oauth-app"), {**space_env(oidc_provider_session), "TRYON_RATE_LIMIT": "100000"})
    # The OAuth app's registered redirect URL, as the Space's is https://<host>/login/callback.
    oidc_provider_session.register_redirect_uri(app.url + "login/callback")
    yield app
    stop_app(app)


def set_cookie(response: httpx.Response, name: str = "session") -> str | None:
    """The value `response` sets for cookie `name` (Secure or not), "" when it deletes it, None when it says nothing."""
    for header in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(header)
        if name in jar:
            morsel = jar[name]
            expired = morsel["max-age"] == "0" or "1970" in morsel["expires"]
            return "" if expired else morsel.value
    return None


def session_data(cookie: str | None) -> dict[str, Any]:
    """What a starlette session cookie holds (its signed payload, read without checking the signature:
    the app checks that; the tests only look inside)."""
    if not cookie:
        return {}
    payload = cookie.split(".", 1)[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def cookie_header(cookies: Mapping[str, str]) -> str:
    """`Cookie:` header for clients that take headers only (gradio_client)."""
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


class SignIn:
    """One sign-in walked by hand: each hop's response is kept for assertions."""

    def __init__(self, base_url: str, provider: OidcProvider, target: str = "/"):
        self.base_url = base_url.rstrip("/") + "/"
        self.provider = provider
        self.target = target
        self.cookies: dict[str, str] = {}
        self.login: httpx.Response | None = None
        self.authorize: httpx.Response | None = None
        self.callback: httpx.Response | None = None

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for name in ("session", "tryon_session"):
            value = set_cookie(response, name)
            if value == "":
                self.cookies.pop(name, None)
            elif value is not None:
                self.cookies[name] = value
        return response

    def get(self, url: str, **kwargs) -> httpx.Response:
        """GET with the cookies so far, no redirects followed, new cookies kept (see the module's note)."""
        with httpx.Client(cookies=self.cookies, follow_redirects=False, timeout=30) as client:
            return self._keep(client.get(url, **kwargs))

    def start(self) -> dict[str, list[str]]:
        """The app's /login/huggingface: the query of the provider URL it redirects to."""
        self.login = self.get(self.base_url + "login/huggingface", params={"_target_url": self.target})
        assert self.login.status_code in (302, 307), self.login.text
        location = self.login.headers["location"]
        assert location.startswith(self.provider.url + "/oauth/authorize?"), location
        return parse_qs(urlsplit(location).query)

    def approve(self) -> str:
        """The provider's authorize page (it approves at once): the callback URL it sends the browser to."""
        assert self.login is not None
        self.authorize = httpx.get(self.login.headers["location"], follow_redirects=False, timeout=30)
        assert self.authorize.status_code == 302, self.authorize.text
        return self.authorize.headers["location"]

    def finish(self, callback_url: str) -> httpx.Response:
        """The app's /login/callback with the session cookie the login set."""
        self.callback = self.get(callback_url)
        return self.callback

    @property
    def session(self) -> dict[str, Any]:
        return session_data(self.cookies.get("session"))


def sign_in(base_url: str, provider: OidcProvider, user: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Sign `user` (claims, e.g. {"preferred_username": "grace"}; default: the provider's user) in to the app at
    `base_url` through the whole authorization-code flow; returns the app's cookies (`session`, whose
    oauth_info is that user, and the app's own `tryon_session`) as a name -> value mapping for httpx."""
    previous = provider.user
    if user is not None:
        provider.user = dict(user)
    try:
        flow = SignIn(base_url, provider)
        flow.start()
        callback = flow.finish(flow.approve())
    finally:
        provider.user = previous
    assert callback.status_code in (302, 307) and callback.headers["location"] == "/", (callback.status_code, callback.text)
    username = flow.session.get("oauth_info", {}).get("userinfo", {}).get("preferred_username")
    assert username == (user or previous).get("preferred_username"), flow.session
    return dict(flow.cookies)


def run_event(base_url: str, api_name: str, data: list[Any] | None = None, cookies: Mapping[str, str] | None = None,
              headers: Mapping[str, str] | None = None, timeout: float = 60) -> dict[str, Any]:
    """Run one of the page's events (public or private, by its api_name) the way the page does, through
    gradio's queue, with these cookies and headers (e.g. Accept-Language); its `process_completed`
    message's output ({"data": [...]} or {"error": ...}). The handler's gr.Request carries the cookies,
    so a signed-in visitor's `session` reaches it."""
    with httpx.Client(base_url=base_url, cookies=dict(cookies or {}), headers=dict(headers or {}), timeout=timeout) as client:
        config = client.get("config").json()
        matches = [d for d in config["dependencies"] if d.get("api_name") == api_name]
        assert len(matches) == 1, f"{len(matches)} events named {api_name!r}"
        session_hash = secrets.token_hex(8)
        joined = client.post("gradio_api/queue/join", json={"data": data or [], "event_data": None, "fn_index": matches[0]["id"],
                                                            "trigger_id": None, "session_hash": session_hash})
        joined.raise_for_status()
        with client.stream("GET", "gradio_api/queue/data", params={"session_hash": session_hash}) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return message.get("output") or {}
    raise AssertionError(f"{api_name}: the queue closed without a result")


def login_label(base_url: str, cookies: Mapping[str, str] | None = None, language: str = "en-US") -> str:
    """What the page's login button is set to on load for this visitor (gradio's LoginButton load event)."""
    output = run_event(base_url, "_check_login_status", cookies=cookies, headers={"Accept-Language": language})
    assert "data" in output, output
    return output["data"][0]["value"]
