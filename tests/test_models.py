"""The model catalogue: every FAL model through the service against the FAL test server (which
checks each model's arguments against its published schema and answers in its own shape), sync and
async, costs equal to the catalogue's arithmetic, the fallback on refusal, options refused."""

from __future__ import annotations

import json

import pytest

from tryon import models as catalogue
from tryon.config import Settings
from tryon.errors import InvalidRequest, ProviderError
from tryon.jobs import JOB_KEY
from tryon.outfit import Outfit
from tryon.providers.base import EditOptions
from tryon.providers import build_provider
from tryon.service import TryOnService
from test_jobs import make_service, wait_for
from tryon.jobs.worker import WorkerPool

FAL_MODELS = [m.id for m in catalogue.for_provider("fal")]
PRO, FASHN, KOLORS, SEEDREAM, NANO2 = ("fal-ai/nano-banana-pro/edit", "fal-ai/fashn/tryon/v1.6",
                                       "fal-ai/kling/v1-5/kolors-virtual-try-on", "fal-ai/bytedance/seedream/v4.5/edit",
                                       "fal-ai/nano-banana-2/edit")


def fal_service(fal_server, tmp_path, **env) -> TryOnService:
    settings = Settings.from_env({**fal_server.env(**env), "TRYON_DATA_DIR": str(tmp_path / "data")})
    return TryOnService(settings, build_provider(settings))


def options_for(model_id: str) -> dict:
    """What each model can make: seedream's smallest size is 2K."""
    return {"resolution": "2K"} if model_id == SEEDREAM else {}


def result_url(fal_server, request_id: str) -> str:
    """The picture a request drew, in whichever shape its model answers ({images: [...]} or {image})."""
    answer = fal_server.jobs[request_id].result
    return (answer.get("images") or [answer.get("image")])[0]["url"]


def list_price(model_id: str, images: int, resolution: str = "1K") -> float:
    return round(catalogue.MODELS[model_id].prices.get(resolution, catalogue.MODELS[model_id].prices.get("*")) * images, 6)


def test_the_catalogue_has_the_five_fal_models_with_sources_and_two_replicate_ones():
    assert FAL_MODELS == [PRO, NANO2, FASHN, KOLORS, SEEDREAM]
    assert [m.id for m in catalogue.for_provider("replicate")] == ["google/nano-banana", "google/nano-banana-pro"]
    for model in catalogue.MODELS.values():
        assert model.price_source and model.schema_source and model.good_at["en"] and model.good_at["es"]
        assert "2026" in model.price_source  # when the price was read


@pytest.mark.parametrize("model_id", FAL_MODELS)
def test_every_fal_model_runs_a_two_garment_look_in_its_own_schema(fal_server, tmp_path, person_png, garment_pngs, model_id):
    service = fal_service(fal_server, tmp_path)
    outfit = Outfit.parse(model=model_id, **options_for(model_id))
    result = service.try_on_sync(person_png, garment_pngs[:2], outfit=outfit)
    submits = fal_server.submits_for(model_id)
    assert len(submits) == 2 and len(fal_server.submits) == 2  # the sync chain: one call per garment, on this model
    assert all(job.drawn_by == model_id for job in fal_server.jobs_for(model_id))  # the server validated and drew each
    assert result.image and result.timings["model"] == model_id
    # The cost: the catalogue's price × images, and what the page was told before the run.
    resolution = outfit.resolution
    assert result.timings["cost_usd"] == list_price(model_id, 2, resolution)
    assert result.timings["estimate"]["usd"] == pytest.approx(list_price(model_id, 2, resolution))
    assert [c["model"] for c in result.timings["calls"]] == [model_id, model_id]
    # The second call dresses the first call's picture.
    first, second = (s.body for s in submits)
    person_field = {FASHN: "model_image", KOLORS: "human_image_url"}.get(model_id)
    if person_field:
        assert second[person_field] == result_url(fal_server, result.timings["provider_request_ids"][0])
    else:
        assert second["image_urls"][0] == result_url(fal_server, result.timings["provider_request_ids"][0])


def test_fashn_gets_its_own_category_words(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path)
    outfit = Outfit.parse(categories=["dress", "outerwear"], model=FASHN)
    service.try_on_sync(person_png, garment_pngs[:2], outfit=outfit)
    sent = [s.body["category"] for s in fal_server.submits_for(FASHN)]
    assert sent == ["one-pieces", "tops"]  # inner to outer: the dress, then the outerwear over it
    assert all(s.body["mode"] == "balanced" and s.body["num_samples"] == 1 for s in fal_server.submits_for(FASHN))


@pytest.mark.parametrize("model_id, outfit, words", [
    (FASHN, {"resolution": "4K"}, "FASHN Try-On v1.6 cannot make a 4K result: use 1K"),
    (KOLORS, {"num_images": 2}, "cannot make 2 results: use 1 to 1"),
    (KOLORS, {"descriptions": ["red tee"]}, "Garment 1: Kling Kolors Virtual Try-On v1.5 cannot make garment descriptions"),
    (FASHN, {"categories": ["shoes"]}, "Garment 1: FASHN Try-On v1.6 cannot make the category shoes: use top, outerwear, bottom, dress"),
    (SEEDREAM, {"resolution": "1K"}, "cannot make a 1K result: use 2K, 4K"),
    (FASHN, {"aspect_ratio": "16:9"}, "cannot make the 16:9 aspect ratio: use same"),
])
def test_an_option_a_model_cannot_honour_is_refused_before_anything_is_paid(fal_server, tmp_path, person_png, garment_pngs,
                                                                              model_id, outfit, words):
    service = fal_service(fal_server, tmp_path)
    with pytest.raises(InvalidRequest) as raised:
        service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(model=model_id, **outfit))
    assert raised.value.code == "model_cannot" and words in raised.value.message("en")
    assert "no admite" in raised.value.message("es")
    assert fal_server.submits == [] and fal_server.uploads == []


def test_unknown_and_unavailable_models_are_named_in_the_error(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path)
    with pytest.raises(InvalidRequest) as unknown:
        service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(model="fal-ai/made-up"))
    assert unknown.value.code == "unknown_model" and "fal-ai/fashn/tryon/v1.6" in unknown.value.message("en")
    with pytest.raises(InvalidRequest) as elsewhere:
        service.try_on_sync(person_png, garment_pngs[:1], outfit=Outfit.parse(model="google/nano-banana"))
    assert elsewhere.value.code == "model_unavailable" and "runs on Replicate" in elsewhere.value.message("en")
    assert fal_server.submits == []


def test_a_refusal_by_the_first_model_is_answered_by_the_next(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path, TRYON_FAL_MODEL=f"{PRO},{FASHN}")
    fal_server.behaviour.content_policy_models = {PRO}
    result = service.try_on_sync(person_png, garment_pngs[:2])
    assert result.timings["model"] == FASHN and result.timings["model_requested"] == PRO
    (passed,) = result.timings["model_fallback"]
    assert passed["model"] == PRO and passed["step"] == 1 and passed["reason"].startswith("content_policy")
    assert len(fal_server.submits_for(PRO)) == 1 and len(fal_server.submits_for(FASHN)) == 2
    assert result.timings["cost_usd"] == list_price(FASHN, 2)  # a refused call is not billed


def test_an_empty_answer_also_moves_on_but_an_unreadable_photo_does_not(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path, TRYON_FAL_MODEL=f"{PRO},{NANO2}")
    fal_server.behaviour.no_image_models = {PRO}
    result = service.try_on_sync(person_png, garment_pngs[:1])
    assert result.timings["model"] == NANO2 and result.timings["model_fallback"][0]["reason"].startswith("no_image_returned")
    fal_server.reset()
    service = fal_service(fal_server, tmp_path, TRYON_FAL_MODEL=f"{PRO},{NANO2}")
    refs = [service.upload(person_png).ref, service.upload(garment_pngs[0]).ref]
    for ref in refs:  # the model cannot read these photos (only these: other apps share the server)
        fal_server.files.pop(ref.rsplit("/files/", 1)[1], None)
    with pytest.raises(ProviderError) as raised:
        service.try_on_sync(person_png, garment_pngs[:1])
    assert raised.value.code == "provider_rejected_input"
    assert fal_server.submits_for(NANO2) == []


def test_a_comparison_runs_both_models_without_fallback(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path, TRYON_FAL_MODEL=f"{PRO},{FASHN}")
    first, second = service.compare(person_png, garment_pngs[:1], Outfit.parse(model=NANO2), KOLORS)
    assert first.timings["model"] == NANO2 and second.timings["model"] == KOLORS
    assert first.timings["cost_usd"] == list_price(NANO2, 1) and second.timings["cost_usd"] == list_price(KOLORS, 1)
    assert len(fal_server.uploads) == 2  # the person and the garment, uploaded once for both
    fal_server.behaviour.content_policy_models = {KOLORS}
    # No fallback: the refusal is that side's answer, and the other side's paid picture is kept.
    kept, refused = service.compare(person_png, garment_pngs[:1], Outfit.parse(model=NANO2), KOLORS)
    assert kept.timings["model"] == NANO2 and isinstance(refused, ProviderError) and refused.code == "content_policy"
    assert fal_server.submits_for(FASHN) == []
    fal_server.behaviour.content_policy_models = {KOLORS, NANO2}
    with pytest.raises(ProviderError) as raised:  # both refused: the first's refusal
        service.compare(person_png, garment_pngs[:1], Outfit.parse(model=NANO2), KOLORS)
    assert raised.value.code == "content_policy"


def test_estimates_follow_the_catalogue_arithmetic():
    pro, fashn = catalogue.MODELS[PRO], catalogue.MODELS[FASHN]
    assert catalogue.estimate(pro, 4, 1, "1K", "sync").public() == {"model": PRO, "mode": "sync", "calls": 4, "images": 4, "usd": 0.6}
    assert catalogue.estimate(pro, 4, 1, "1K", "async").public()["usd"] == 0.15  # one call with every garment
    assert catalogue.estimate(pro, 2, 3, "4K", "sync").public() == {"model": PRO, "mode": "sync", "calls": 2, "images": 4, "usd": 1.2}
    assert catalogue.estimate(fashn, 3, 1, "1K", "async").public()["calls"] == 3  # one garment per call, async too


def test_a_price_setting_overrides_the_catalogue(fal_server, tmp_path, person_png, garment_pngs):
    service = fal_service(fal_server, tmp_path, TRYON_MODEL_PRICES='{"fal-ai/fashn/tryon/v1.6": 0.05}')
    result = service.try_on_sync(person_png, garment_pngs[:2], outfit=Outfit.parse(model=FASHN))
    assert result.timings["cost_usd"] == 0.1


@pytest.fixture
def fal_jobs_for(fal_server, redis_server, tmp_path):
    pools = []

    def make(**env):
        settings = Settings.from_env({**fal_server.env(**env), "TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_VISIBILITY": "2"})
        service = make_service(settings, redis_server)
        pools.append(WorkerPool(service, 1).start())
        return service

    yield make
    for pool in pools:
        pool.stop()


def test_an_async_job_on_a_one_garment_model_chains_and_records_each_step(fal_jobs_for, fal_server, person_png, garment_pngs):
    service = fal_jobs_for()
    job = service.submit_job(person_png, garment_pngs[:3], outfit=Outfit.parse(model=FASHN))
    answer = wait_for(service, job.job_id)
    assert answer["status"] == "done", answer
    timings = answer["timings"]
    assert len(fal_server.submits_for(FASHN)) == 3 and "fal_call_3" in timings
    steps = service.queue.get(job.job_id).steps
    assert [s["step"] for s in steps] == [1, 2, 3] and all(s["request_id"] and s["ref"] for s in steps)
    assert timings["provider_request_ids"] == [s["request_id"] for s in steps]
    assert timings["cost_usd"] == list_price(FASHN, 3) and timings["estimate"]["calls"] == 3


def test_an_async_job_on_an_editor_is_one_call_and_falls_back_too(fal_jobs_for, fal_server, person_png, garment_pngs):
    service = fal_jobs_for(TRYON_FAL_MODEL=f"{PRO},{FASHN}")
    job = service.submit_job(person_png, garment_pngs[:2], outfit=Outfit.parse(model=NANO2))
    assert wait_for(service, job.job_id)["timings"]["cost_usd"] == list_price(NANO2, 1)
    assert len(fal_server.submits_for(NANO2)) == 1
    fal_server.behaviour.content_policy_models = {PRO}
    job = service.submit_job(person_png, garment_pngs[:2])
    answer = wait_for(service, job.job_id)
    assert answer["status"] == "done" and answer["timings"]["model"] == FASHN
    assert answer["timings"]["model_fallback"][0]["model"] == PRO
    assert len(fal_server.submits_for(FASHN)) == 2  # the fallback takes one garment per call: a chain


def test_a_resumed_chain_job_pays_for_no_step_twice(fal_server, redis_server, tmp_path, person_png, garment_pngs):
    settings = Settings.from_env({**fal_server.env(), "TRYON_DATA_DIR": str(tmp_path), "TRYON_JOB_VISIBILITY": "2"})
    service = make_service(settings, redis_server)
    job = service.submit_job(person_png, garment_pngs[:2], outfit=Outfit.parse(model=FASHN))
    # An earlier worker did step 1 and submitted step 2, then died: its journal is on the record.
    record = service.queue.get(job.job_id)
    first = service.provider.edit("x", record.inputs[0]["ref"], [record.inputs[1]["ref"]], options=EditOptions(model=FASHN))
    second_id = service.provider.submit_edit("x", first.ref, [record.inputs[2]["ref"]], EditOptions(model=FASHN))
    journal = [{"step": 1, "model": FASHN, "request_id": first.request_id, "ref": first.ref, "ms": 1.0, "images": 1,
                "provider": "fal", "resolution": "1K"},
               {"step": 2, "model": FASHN, "request_id": second_id}]
    service.queue.redis.hset(JOB_KEY.format(job.job_id), "steps", json.dumps(journal))
    before = len(fal_server.submits)
    pool = WorkerPool(service, 1).start()
    try:
        answer = wait_for(service, job.job_id)
    finally:
        pool.stop()
    assert answer["status"] == "done" and len(fal_server.submits) == before  # nothing submitted again
    assert answer["timings"]["provider_request_ids"] == [first.request_id, second_id]
    assert answer["timings"]["resumed_provider_request"] is True


@pytest.mark.parametrize("model_id", FAL_MODELS)
def test_every_fal_model_runs_an_async_job(fal_jobs_for, fal_server, person_png, garment_pngs, model_id):
    service = fal_jobs_for()
    job = service.submit_job(person_png, garment_pngs[:2], outfit=Outfit.parse(model=model_id, **options_for(model_id)))
    answer = wait_for(service, job.job_id)
    assert answer["status"] == "done", answer
    model = catalogue.MODELS[model_id]
    calls = 1 if model.garments_per_call > 1 else 2  # one call with both garments, or a chain
    assert len(fal_server.submits_for(model_id)) == calls and answer["timings"]["model"] == model_id
    assert answer["timings"]["cost_usd"] == list_price(model_id, calls, options_for(model_id).get("resolution", "1K"))
    assert answer["image_url"] == answer["image_urls"][0]
