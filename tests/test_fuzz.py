"""Fuzzing with hypothesis: no exception escapes image intake or REST parsing except our own input errors."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tryon.errors import TryOnError
from tryon.images import Limits, load_image

LIMITS = Limits(max_bytes=2 * 2**20, max_pixels=20_000_000, max_side=512)


def _seed_images() -> list[bytes]:
    images = []
    for fmt in ("PNG", "JPEG", "WEBP"):
        buffer = io.BytesIO()
        Image.new("RGB", (300, 320), (120, 60, 200)).save(buffer, fmt)
        images.append(buffer.getvalue())
    return images


SEEDS = _seed_images()


def intake_survives(data) -> None:
    try:
        load_image(data, LIMITS)
    except TryOnError:
        pass  # our own, specific input error: the only acceptable failure


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_random_bytes(data):
    intake_survives(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
       st.one_of(st.none(), st.integers(8, 5000)))
def test_mutated_real_images(seed, flips, cut):
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    intake_survives(bytes(data[:cut] if cut else data))


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.text(max_size=300),
    st.builds(lambda t, p: f"data:{t};base64,{p}", st.sampled_from(["image/png", "image/jpeg", "text/plain", "", "image/webp;x=1"]),
              st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_- \n", max_size=300)),
    st.builds(lambda b: base64.b64encode(b).decode(), st.binary(max_size=600)),
))
def test_random_text_inputs(text):
    intake_survives(text)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"userImage": JSON, "garments": JSON}, optional={"apiKey": JSON}),
    st.fixed_dictionaries({"userImage": st.text(max_size=80), "garments": st.lists(st.one_of(st.none(), st.text(max_size=80)), max_size=6)}),
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(BODIES, st.sampled_from(["/api/images/generate", "/api/images/upload", "/api/jobs/submit"]))
def test_rest_parsing_never_fails_on_our_side(app_server, body, route):
    response = httpx.post(app_server.url + route.lstrip("/"), json=body, timeout=30)
    assert response.status_code in (200, 400, 401, 404, 413, 429), (response.status_code, response.text[:300])
    if response.status_code != 200:
        answer = response.json()
        assert answer["success"] is False and answer["code"] and answer["error"]
