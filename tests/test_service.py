"""The sync chain: N garments -> N provider calls in order, complete timings, errors as the seed's."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tryon import timing
from tryon.errors import InvalidImage, InvalidRequest
from tryon.providers.local import LocalPreviewProvider
from tryon.service import TryOnService


class RecordingProvider(LocalPreviewProvider):
    """The real offline provider, noting every call it gets."""

    def __init__(self):
        super().__init__()
        self.uploads: list[str] = []
        self.edits: list[tuple[str, list[str], str]] = []  # (person, garments, result)

    def upload(self, image):
        ref = super().upload(image)
        self.uploads.append(ref)
        return ref

    def edit(self, prompt, person, garments, timeout_s=None, options=None):
        result = super().edit(prompt, person, garments, timeout_s, options)
        self.edits.append((person, list(garments), result.ref))
        return result


@pytest.fixture
def recording(settings):
    provider = RecordingProvider()
    return provider, TryOnService(settings, provider)


@pytest.mark.parametrize("count", [1, 2, 3, 4])
def test_n_garments_make_n_calls_chained_in_order(recording, person_png, garment_pngs, count):
    provider, service = recording
    result = service.try_on_sync(person_png, garment_pngs[:count])
    assert len(provider.edits) == count
    # The local store is content-addressed: uploading a picture again gives its reference.
    expected_person = service.upload(person_png).ref
    expected_garments = {f"garment_{n}": service.upload(g).ref for n, g in enumerate(garment_pngs[:count], start=1)}
    assert provider.edits[0][0] == expected_person
    # Left on "auto", each garment is layered by the category its picture shows: the T-shirt,
    # hoodie and sweater (tops) in slot order, the jacket (slot 2, outerwear) over them.
    order = [step["field"] for step in result.timings["order"]]
    assert order == [f for f in ("garment_1", "garment_3", "garment_4", "garment_2") if f in expected_garments]
    assert [garments for _, garments, _ in provider.edits] == [[expected_garments[f]] for f in order]
    # each call dresses the previous call's result
    for previous, current in zip(provider.edits, provider.edits[1:]):
        assert current[0] == previous[2]
    assert Image.open(io.BytesIO(result.image)).size == (768, 1024)


def test_timing_record_is_complete_and_consistent(service, person_png, garment_pngs):
    timings = service.try_on_sync(person_png, garment_pngs[:3]).timings
    for key in ("requestId", "be_received_ts", "be_response_sent_ts", "total_backend_ms", "fal_duration_ms",
                "backend_overhead_ms", "cold_start", "provider", "fal_call_1", "fal_call_2", "fal_call_3"):
        assert key in timings, key
    assert "fal_call_4" not in timings
    assert timings["provider"] == "local" and timings["mode"] == "sync" and timings["garments"] == 3
    calls = [timings[f"fal_call_{i}"] for i in (1, 2, 3)]
    assert all(ms > 0 for ms in calls)
    assert timings["fal_duration_ms"] == pytest.approx(sum(calls), abs=0.2)
    assert timings["backend_overhead_ms"] == pytest.approx(timings["total_backend_ms"] - timings["fal_duration_ms"], abs=0.2)
    assert timings["backend_overhead_ms"] >= 0
    wall = timings["be_response_sent_ts"] - timings["be_received_ts"]
    assert 0 <= timings["total_backend_ms"] <= wall + 2
    assert [u["field"] for u in timings["uploads"]] == ["person", "garment_1", "garment_2", "garment_3"]
    assert timings["offline_preview"] is True


def test_cold_start_is_true_only_for_the_first_request(monkeypatch, service, person_png, garment_pngs):
    monkeypatch.setattr(timing, "_first_request", True)
    first = service.try_on_sync(person_png, garment_pngs[:1]).timings
    second = service.try_on_sync(person_png, garment_pngs[:1]).timings
    assert first["cold_start"] is True and second["cold_start"] is False


def test_empty_slots_are_skipped_and_errors_name_the_slot(recording, person_png, garment_pngs):
    provider, service = recording
    result = service.try_on_sync(person_png, [None, garment_pngs[0], "", garment_pngs[1]])
    assert [u["field"] for u in result.timings["uploads"]] == ["person", "garment_2", "garment_4"]
    with pytest.raises(InvalidImage) as caught:
        service.try_on_sync(person_png, [garment_pngs[0], None, b"not an image"])
    assert str(caught.value) == "Garment 3: This file is not an image. Use a JPEG, PNG or WebP photo."
    assert caught.value.field == "garment_3"


def test_a_bad_input_costs_no_provider_call(recording, person_png, garment_pngs):
    provider, service = recording
    with pytest.raises(InvalidImage):
        service.try_on_sync(person_png, [garment_pngs[0], garment_pngs[1], b"\x89PNG\r\n\x1a\n truncated"])
    assert provider.edits == []


def test_no_garment_is_the_seed_s_error(service, person_png):
    for garments in ([], [None, None], None):
        with pytest.raises(InvalidRequest) as caught:
            service.try_on_sync(person_png, garments)
        assert str(caught.value) == "At least one garment is required."
        assert caught.value.message("es") == "Se requiere al menos una prenda."


def test_five_garments_are_too_many(service, person_png, garment_pngs):
    with pytest.raises(InvalidRequest) as caught:
        service.try_on_sync(person_png, garment_pngs + garment_pngs[:1])
    assert str(caught.value) == "At most 4 garments per try-on; got 5."


def test_a_person_is_required(service, garment_pngs):
    with pytest.raises(InvalidRequest) as caught:
        service.try_on_sync(None, garment_pngs[:1])
    assert caught.value.code == "no_person" and caught.value.field == "person"


def test_upload_returns_a_reusable_reference(service, person_png, garment_pngs):
    upload = service.upload(person_png, "person")
    assert upload.ref.startswith("local:")
    assert service.provider.fetch(upload.ref) == upload.image.jpeg


def test_the_preview_result_is_badged(service, person_png, garment_pngs):
    result = service.try_on_sync(person_png, garment_pngs[:1])
    assert result.is_preview and "Offline preview" in result.provider_label
    picture = result.to_pil().convert("L")
    corner = picture.crop((0, picture.height - 60, 300, picture.height))
    assert min(corner.get_flattened_data()) < 60  # the dark badge sits in the bottom-left corner
