"""A visitor signed in with Hugging Face (through the local OpenID Connect provider) has a quota of
their own, apart from anonymous visitors and from other accounts, and one history on every device."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file
from starlette.requests import Request

from conftest import NO_LIMITS, start_app, stop_app
from oauth_fixtures import cookie_header, sign_in, space_env
from tryon.config import Settings
from tryon.web.events import Handlers
from tryon.web.visitors import page_visitor

pytest_plugins = ["oauth_fixtures"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def paid_space(tmp_path_factory, oidc_provider_session, fal_server_session):
    """A Space with hf_oauth and a FAL key: 1 paid call an hour anonymous, 2 signed in."""
    env = {**NO_LIMITS, **fal_server_session.env(TRYON_REQUEST_TIMEOUT="20"), **space_env(oidc_provider_session),
           "TRYON_QUOTA_ANONYMOUS_CALLS": "1", "TRYON_QUOTA_SIGNED_IN_CALLS": "2", "TRYON_RATE_LIMIT": "100000"}
    app = start_app(tmp_path_factory.mktemp("paid-space"), env)
    oidc_provider_session.register_redirect_uri(app.url + "login/callback")
    yield app
    stop_app(app)


def look(url: str, asset_paths, cookies=None):
    client = Client(url, verbose=False, headers={"Cookie": cookie_header(cookies)} if cookies else None)
    return client.predict(handle_file(asset_paths["person_astronaut"]), handle_file(asset_paths["garment_tshirt_red"]),
                          api_name="/try_on")


def test_a_signed_in_visitor_has_a_quota_of_their_own(paid_space, oidc_provider, fal_server, asset_paths):
    grace = sign_in(paid_space.url, oidc_provider, {"sub": "u-grace", "preferred_username": "grace"})
    hopper = sign_in(paid_space.url, oidc_provider, {"sub": "u-hopper", "preferred_username": "hopper"})
    look(paid_space.url, asset_paths)  # the anonymous hour's one call
    with pytest.raises(Exception, match="1 model call per hour for visitors who are not signed in"):
        look(paid_space.url, asset_paths)
    look(paid_space.url, asset_paths, grace)
    look(paid_space.url, asset_paths, grace)
    submits = len(fal_server.submits)
    with pytest.raises(Exception, match="2 model calls per hour for each signed-in visitor"):
        look(paid_space.url, asset_paths, grace)
    assert len(fal_server.submits) == submits
    look(paid_space.url, asset_paths, hopper)  # another account: a quota of its own


def request_with(cookie: str, userinfo: dict | None) -> Request:
    """A starlette request as gradio hands it over: its cookie, and the OAuth session gradio's middleware decoded."""
    scope = {"type": "http", "headers": [(b"cookie", cookie.encode())], "client": ("198.51.100.7", 1234),
             "session": {"oauth_info": {"userinfo": userinfo}} if userinfo else {}}
    return Request(scope)


def test_one_history_on_every_device_once_signed_in(tmp_path):
    settings = Settings.from_env({"OAUTH_CLIENT_ID": "c", "OPENID_PROVIDER_URL": "http://127.0.0.1:9", "SYSTEM": "spaces",
                                  "SPACE_ID": "a/b", "TRYON_DATA_DIR": str(tmp_path)})
    assert settings.hf_oauth

    class Service:  # what Handlers reads for this: the settings
        pass

    service = Service()
    service.settings = settings
    handlers = Handlers(service)
    laptop, phone = (request_with(f"tryon_session={name}", {"sub": "u-grace", "preferred_username": "grace"}) for name in ("a" * 32, "b" * 32))
    stranger = request_with("tryon_session=" + "c" * 32, None)
    assert handlers._history_owner(laptop) == handlers._history_owner(phone) != handlers._history_owner(stranger)
    assert "grace" not in handlers._history_owner(laptop)  # a digest of the account, not its name
    assert page_visitor(laptop, settings) == page_visitor(phone, settings)
    assert page_visitor(laptop, settings).kind == "signed_in" and page_visitor(stranger, settings).kind == "anonymous"
