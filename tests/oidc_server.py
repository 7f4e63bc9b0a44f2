"""A local OpenID Connect provider that speaks the protocol the way Hugging Face's does, for gradio's
real OAuth routes (authlib's starlette client) to run against, unmodified.

    GET  /.well-known/openid-configuration   discovery (issuer = the provider's URL, as OPENID_PROVIDER_URL)
    GET  /.well-known/oauth-authorization-server   the same document (RFC 8414 path; Hugging Face serves both)
    GET  /oauth/jwks                          {"keys": [the RS256 public key, with its kid]}
    GET  /oauth/authorize                     response_type=code, client_id, redirect_uri, scope, state, nonce
                                              [, code_challenge + S256]: no consent page, `provider.user` is
                                              signed in and approves at once -> 302 redirect_uri?code&state
    POST /oauth/token                         grant_type=authorization_code, code, redirect_uri
                                              [, code_verifier]; client_secret_basic or client_secret_post
                                              -> {access_token, token_type, expires_in, scope, id_token}
    GET  /oauth/userinfo                      Authorization: Bearer <access_token> -> the user's claims
    GET  /avatars/<name>.png                  a small picture, so `picture` needs no outside host

What it checks, as an authorization server must (RFC 6749, OpenID Connect Core):
  * authorize: an unknown client_id or a redirect_uri not registered for it gets a 400 page and is
    never redirected to; other mistakes (response_type, scope, PKCE method) and a refusal
    (`provider.approve = False`) go back to the redirect_uri as ?error=...&state=...
  * token: no client authentication, an unknown client or a wrong secret -> 401 invalid_client (with
    WWW-Authenticate); an unknown, used, expired or another client's code, a redirect_uri other
    than the authorization request's, or a wrong PKCE verifier -> 400 invalid_grant. A code used
    twice also revokes the tokens it gave (RFC 6749 §4.1.2).
  * userinfo: a missing, unknown, revoked or expired token -> 401 invalid_token.

Registered redirect URIs are compared without their query string: gradio sends
`https://<space host>/login/callback?_target_url=...` and Hugging Face accepts it for the Space's
`/login/callback`. The token request's redirect_uri must be the authorization request's exactly.

Everything received is recorded (`provider.received("/oauth/token")`), with the client
authentication method the token endpoint saw. Its clock can be moved (`advance`) so codes and
tokens expire without waiting.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

DEFAULT_CLIENT_ID = "tryon-test-client"
DEFAULT_CLIENT_SECRET = "tryon-test-secret"
DEFAULT_USER = {"preferred_username": "ada", "name": "Ada Lovelace"}
SCOPES = ("openid", "profile", "email", "read-repos", "write-repos", "manage-repos", "inference-api", "read-billing")
PROFILE_CLAIMS = ("name", "preferred_username", "profile", "picture", "website")
EMAIL_CLAIMS = ("email", "email_verified")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]
    status: int = 0
    client_auth: str | None = None  # token endpoint: "client_secret_basic", "client_secret_post" or None


@dataclass
class Grant:
    code: str
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    nonce: str | None
    claims: dict[str, Any]
    expires_at: float
    code_challenge: str | None = None
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass
class AccessToken:
    token: str
    client_id: str
    scope: tuple[str, ...]
    claims: dict[str, Any]
    expires_at: float
    revoked: bool = False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _half_hash(value: str) -> str:
    """at_hash / c_hash for RS256: the left half of the SHA-256, base64url."""
    digest = hashlib.sha256(value.encode()).digest()
    return _b64url(digest[: len(digest) // 2])


def _png(rgb: tuple[int, int, int], size: int = 8) -> bytes:
    """A tiny solid PNG, built by hand (no Pillow needed in the server)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def _without_query(uri: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class OidcProvider:
    """provider = OidcProvider().start(); app env from provider.env(); provider.register_redirect_uri(...)."""

    def __init__(self, client_id: str = DEFAULT_CLIENT_ID, client_secret: str = DEFAULT_CLIENT_SECRET,
                 code_ttl_s: float = 600.0, token_ttl_s: float = 28800.0, id_token_ttl_s: float = 3600.0):
        self.client_id = client_id
        self._initial_secret = client_secret
        self.code_ttl_s = code_ttl_s
        self.token_ttl_s = token_ttl_s
        self.id_token_ttl_s = id_token_ttl_s
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
        self.clients: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.paths_ever: set[str] = set()  # every path asked for since start (reset keeps it: clients cache discovery and keys)
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, AccessToken] = {}
        self.user: dict[str, Any] = dict(DEFAULT_USER)
        self.approve = True  # False: the visitor refuses on the consent screen -> error=access_denied
        self._offset_s = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.add_client(client_id, client_secret)

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, port: int = 0) -> "OidcProvider":
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.provider = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-provider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        """Default behaviour and empty records; registered clients and redirect URIs stay."""
        with self._lock:
            self.requests.clear()
            self.grants.clear()
            self.tokens.clear()
            self.user = dict(DEFAULT_USER)
            self.approve = True
            self._offset_s = 0.0
            self.clients[self.client_id]["secret"] = self._initial_secret

    @property
    def client_secret(self) -> str:
        return self.clients[self.client_id]["secret"]

    def env(self, scopes: str = "openid profile") -> dict[str, str]:
        """What a Space with `hf_oauth: true` gives the app (gradio reads these at import)."""
        return {"OAUTH_CLIENT_ID": self.client_id, "OAUTH_CLIENT_SECRET": self.clients[self.client_id]["secret"],
                "OAUTH_SCOPES": scopes, "OPENID_PROVIDER_URL": self.url}

    # -- configuration ------------------------------------------------------------------------
    def add_client(self, client_id: str, secret: str, redirect_uris: list[str] | None = None,
                   scopes: tuple[str, ...] = SCOPES) -> None:
        with self._lock:
            self.clients[client_id] = {"secret": secret, "redirect_uris": set(map(_without_query, redirect_uris or [])),
                                       "scopes": set(scopes)}

    def register_redirect_uri(self, uri: str, client_id: str | None = None) -> None:
        with self._lock:
            self.clients[client_id or self.client_id]["redirect_uris"].add(_without_query(uri))

    def set_secret(self, secret: str, client_id: str | None = None) -> None:
        """Rotate a client's secret at the provider (the app still holds the old one)."""
        with self._lock:
            self.clients[client_id or self.client_id]["secret"] = secret

    def now(self) -> float:
        return time.time() + self._offset_s

    def advance(self, seconds: float) -> None:
        """Move the provider's clock: codes and access tokens expire without a wait."""
        with self._lock:
            self._offset_s += seconds

    # -- what it saw ----------------------------------------------------------------------------
    def received(self, path: str | None = None, method: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (path is None or r.path == path) and (method is None or r.method == method)]

    def claims_for(self, user: dict[str, Any]) -> dict[str, Any]:
        """Hugging Face's claims for a user; anything not given follows from preferred_username."""
        name = user.get("preferred_username", "ada")
        claims = {
            "sub": hashlib.sha256(name.encode()).hexdigest()[:24],  # HF: a stable 24-hex id that survives renames
            "name": name,
            "preferred_username": name,
            "profile": f"https://huggingface.co/{name}",
            "picture": f"{self.url}/avatars/{name}.png",
            "website": "",
            "email": f"{name}@example.test",
            "email_verified": True,
            "isPro": False,
        }
        claims.update(user)
        return claims

    def scoped(self, claims: dict[str, Any], scope: tuple[str, ...]) -> dict[str, Any]:
        keep = {"sub", "isPro"}
        if "profile" in scope:
            keep.update(PROFILE_CLAIMS)
        if "email" in scope:
            keep.update(EMAIL_CLAIMS)
        return {k: v for k, v in claims.items() if k in keep or k not in (*PROFILE_CLAIMS, *EMAIL_CLAIMS)}

    def metadata(self) -> dict[str, Any]:
        base = self.url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "userinfo_endpoint": f"{base}/oauth/userinfo",
            "jwks_uri": f"{base}/oauth/jwks",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": list(SCOPES),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
                                 *PROFILE_CLAIMS, *EMAIL_CLAIMS],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def id_token(self, grant: Grant, access_token: str) -> str:
        now = int(self.now())
        claims = {
            **self.scoped(grant.claims, grant.scope),
            "iss": self.url,
            "aud": grant.client_id,
            "azp": grant.client_id,
            "iat": now,
            "auth_time": now,
            "exp": now + int(self.id_token_ttl_s),
            "at_hash": _half_hash(access_token),
        }
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        return jwt.encode({"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}, claims, self.key)

    # -- endpoints (called by the handler, under no lock) ----------------------------------------
    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        client = self.clients.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if client is None:
            return _page(400, "Unknown client_id: this app is not registered.")
        if not redirect_uri or _without_query(redirect_uri) not in client["redirect_uris"]:
            return _page(400, "This redirect_uri is not registered for the app.")
        state = query.get("state")

        def back(**params: str) -> tuple[int, dict[str, str], bytes]:
            if state is not None:
                params["state"] = state
            separator = "&" if urlsplit(redirect_uri).query else "?"
            return 302, {"Location": redirect_uri + separator + urlencode(params)}, b""

        if query.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="only response_type=code")
        scope = tuple(query.get("scope", "").split())
        if "openid" not in scope or not set(scope) <= client["scopes"]:
            return back(error="invalid_scope", error_description="scope must include openid, and only known scopes")
        challenge = query.get("code_challenge")
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return back(error="invalid_request", error_description="code_challenge_method must be S256")
        if not self.approve:
            return back(error="access_denied", error_description="The user refused.")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.grants[code] = Grant(code, query["client_id"], redirect_uri, scope, query.get("nonce"),
                                      self.claims_for(self.user), self.now() + self.code_ttl_s, challenge)
        return back(code=code)

    def token(self, headers: dict[str, str], form: dict[str, str], record: Recorded) -> tuple[int, dict[str, Any]]:
        client_id, secret, method = None, None, None
        authorization = headers.get("authorization", "")
        if authorization.lower().startswith("basic "):
            try:
                user_pass = base64.b64decode(authorization[6:].strip(), validate=True).decode()
                raw_id, _, raw_secret = user_pass.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return 401, _error("invalid_client", "malformed Basic credentials")
            client_id, secret, method = unquote_plus(raw_id), unquote_plus(raw_secret), "client_secret_basic"
            if "client_secret" in form:
                return 400, _error("invalid_request", "more than one client authentication method")
        elif "client_secret" in form:
            client_id, secret, method = form.get("client_id"), form["client_secret"], "client_secret_post"
        record.client_auth = method
        client = self.clients.get(client_id or "")
        if method is None or client is None or not hmac.compare_digest(secret.encode(), client["secret"].encode()):
            return 401, _error("invalid_client", "client authentication failed")
        if form.get("client_id") not in (None, client_id):
            return 400, _error("invalid_request", "client_id does not match the authenticated client")
        if form.get("grant_type") != "authorization_code":
            return 400, _error("unsupported_grant_type", "only authorization_code")
        with self._lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.client_id != client_id:
                return 400, _error("invalid_grant", "unknown code")
            if grant.used:
                for token in grant.tokens:  # a replayed code: what it gave is withdrawn too
                    self.tokens[token].revoked = True
                return 400, _error("invalid_grant", "code already used")
            grant.used = True
            if self.now() >= grant.expires_at:
                return 400, _error("invalid_grant", "code expired")
            if form.get("redirect_uri") != grant.redirect_uri:
                return 400, _error("invalid_grant", "redirect_uri differs from the authorization request's")
            if grant.code_challenge is not None:
                verifier = form.get("code_verifier", "")
                if not hmac.compare_digest(_b64url(hashlib.sha256(verifier.encode()).digest()), grant.code_challenge):
                    return 400, _error("invalid_grant", "code_verifier does not match")
            access = "hf_oauth_" + secrets.token_urlsafe(30)
            grant.tokens.append(access)
            self.tokens[access] = AccessToken(access, client_id, grant.scope, grant.claims, self.now() + self.token_ttl_s)
        answer = {"access_token": access, "token_type": "bearer", "expires_in": int(self.token_ttl_s),
                  "scope": " ".join(grant.scope)}
        if "openid" in grant.scope:
            answer["id_token"] = self.id_token(grant, access)
        return 200, answer

    def userinfo(self, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        authorization = headers.get("authorization", "")
        token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""
        with self._lock:
            found = self.tokens.get(token)
            if found is None or found.revoked or self.now() >= found.expires_at:
                return 401, _error("invalid_token", "missing, unknown, revoked or expired access token")
            return 200, self.scoped(found.claims, found.scope)


def _error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


def _page(status: int, text: str) -> tuple[int, dict[str, str], bytes]:
    body = f"<!doctype html><title>Sign in</title><p>{text}</p>".encode()
    return status, {"Content-Type": "text/html; charset=utf-8"}, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read `received()`
        pass

    @property
    def provider(self) -> OidcProvider:
        return self.server.provider  # type: ignore[attr-defined]

    def _record(self) -> Recorded:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form = {}
        if "application/x-www-form-urlencoded" in (self.headers.get("Content-Type") or ""):
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        record = Recorded(self.command, parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)), form,
                          {k.lower(): v for k, v in self.headers.items()})
        with self.provider._lock:
            self.provider.requests.append(record)
            self.provider.paths_ever.add(record.path)
        return record

    def _send(self, record: Recorded, status: int, headers: dict[str, str], body: bytes) -> None:
        record.status = status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, record: Recorded, status: int, data: Any, extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **(extra or {})}
        self._send(record, status, headers, json.dumps(data).encode())

    def do_GET(self) -> None:  # noqa: N802
        record = self._record()
        provider, path = self.provider, record.path
        if path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
            self._json(record, 200, provider.metadata())
        elif path == "/oauth/jwks":
            self._json(record, 200, provider.jwks())
        elif path == "/oauth/authorize":
            self._send(record, *provider.authorize(record.query))
        elif path == "/oauth/userinfo":
            self._userinfo(record)
        elif path.startswith("/avatars/") and path.endswith(".png"):
            colour = hashlib.sha256(path.encode()).digest()[:3]
            self._send(record, 200, {"Content-Type": "image/png"}, _png(tuple(colour)))
        else:
            self._json(record, 404, _error("not_found", path))

    def do_POST(self) -> None:  # noqa: N802
        record = self._record()
        if record.path == "/oauth/token":
            status, data = self.provider.token(record.headers, record.form, record)
            extra = {"WWW-Authenticate": 'Basic realm="oauth"'} if status == 401 else None
            self._json(record, status, data, extra)
        elif record.path == "/oauth/userinfo":
            self._userinfo(record)
        else:
            self._json(record, 404, _error("not_found", record.path))

    def _userinfo(self, record: Recorded) -> None:
        status, data = self.provider.userinfo(record.headers)
        extra = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
        self._json(record, status, data, extra)


def main() -> None:
    """`python tests/oidc_server.py --app http://127.0.0.1:7860`: the provider for a local app, until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="where to listen on 127.0.0.1 (default: a free port)")
    parser.add_argument("--app", default="http://127.0.0.1:7860", help="the app's address (its /login/callback is registered)")
    parser.add_argument("--user", default="ada", help="who signs in (preferred_username)")
    args = parser.parse_args()
    provider = OidcProvider().start(args.port)
    provider.user = {"preferred_username": args.user}
    provider.register_redirect_uri(args.app.rstrip("/") + "/login/callback")
    env = {**provider.env(), "SYSTEM": "spaces", "SPACE_ID": "local/tryon"}
    print(f"OpenID provider on {provider.url}; run the app with:\n")
    print("  " + " ".join(f"{k}='{v}'" for k, v in env.items()) + " python app.py\n", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        provider.stop()


if __name__ == "__main__":
    main()
