"""Settings read the environment once and fail at start with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from tryon.config import Settings
from tryon.errors import ConfigError


def test_embedded_defaults_use_the_offline_preview():
    settings = Settings.from_env({"HOME": "/home/u"})
    assert settings.provider == "local"
    assert settings.max_side == 1024 and settings.max_upload_bytes == 20 * 2**20
    assert settings.data_dir == Path("/home/u/.cache/tryon") or settings.data_dir.name == "tryon"


def test_a_key_selects_fal_and_fal_key_wins_over_fal_api_key():
    assert Settings.from_env({"FAL_API_KEY": "second"}).fal_key == "second"
    settings = Settings.from_env({"FAL_KEY": "first", "FAL_API_KEY": "second"})
    assert settings.fal_key == "first" and settings.provider == "fal"


def test_forcing_local_ignores_the_key():
    assert Settings.from_env({"FAL_KEY": "k", "TRYON_PROVIDER": "local"}).provider == "local"


def test_the_key_never_shows_in_repr():
    assert "super-secret" not in repr(Settings.from_env({"FAL_KEY": "super-secret"}))


def test_data_dir_and_limits_from_env(tmp_path):
    settings = Settings.from_env(
        {"TRYON_DATA_DIR": str(tmp_path), "TRYON_MAX_UPLOAD_MB": "2.5", "TRYON_MAX_MEGAPIXELS": "12", "TRYON_MAX_SIDE": "768"}
    )
    assert settings.data_dir == tmp_path
    assert settings.max_upload_bytes == int(2.5 * 2**20)
    assert settings.max_pixels == 12_000_000 and settings.max_side == 768


def test_xdg_cache_home_is_honoured():
    assert Settings.from_env({"XDG_CACHE_HOME": "/c"}).data_dir == Path("/c/tryon")


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"TRYON_PROVIDER": "banana"}, "TRYON_PROVIDER"),
        ({"TRYON_PROVIDER": "fal"}, "TRYON_PROVIDER=fal uses fal, which needs FAL_KEY"),
        ({"TRYON_PROVIDER": "fal,replicate", "FAL_KEY": "k"}, "uses replicate, which needs REPLICATE_API_TOKEN"),
        ({"TRYON_PROVIDER": "runpod", "RUNPOD_API_KEY": "k"}, "RUNPOD_ENDPOINT_ID and RUNPOD_API_KEY"),
        ({"TRYON_PROVIDER": "local,fal", "FAL_KEY": "k"}, "TRYON_PROVIDER"),
        ({"TRYON_PROVIDER": "fal,fal", "FAL_KEY": "k"}, "TRYON_PROVIDER"),
        ({"RUNPOD_ENDPOINT_ID": "../evil"}, "RUNPOD_ENDPOINT_ID"),
        ({"TRYON_REPLICATE_MODEL": "nomodel"}, "TRYON_REPLICATE_MODEL"),
        ({"TRYON_BREAKER_COOLDOWN": "2h"}, "TRYON_BREAKER_COOLDOWN"),
        ({"TRYON_BREAKER_FAILURES": "0"}, "TRYON_BREAKER_FAILURES"),
        ({"TRYON_MAX_SIDE": "abc"}, "TRYON_MAX_SIDE"),
        ({"TRYON_MAX_SIDE": "100"}, "TRYON_MAX_SIDE"),
        ({"TRYON_MAX_UPLOAD_MB": "-1"}, "TRYON_MAX_UPLOAD_MB"),
        ({"TRYON_MAX_MEGAPIXELS": "lots"}, "TRYON_MAX_MEGAPIXELS"),
        ({"TRYON_PROMPT": "short"}, "TRYON_PROMPT"),
        ({"TRYON_UPLOAD_TTL": "forever"}, "TRYON_UPLOAD_TTL"),
        ({"TRYON_UPLOAD_TTL": "90d"}, "TRYON_UPLOAD_TTL"),
        ({"TRYON_FAL_REST_URL": "http://plain.example"}, "TRYON_FAL_REST_URL"),
        ({"TRYON_FAL_MODEL": "no slash"}, "TRYON_FAL_MODEL"),
        ({"TRYON_FAL_MODEL": "fal-ai/nano-banana-pro/edit,bad model"}, "TRYON_FAL_MODEL"),
        ({"TRYON_MODEL_PRICES": "0.05"}, "TRYON_MODEL_PRICES"),
        ({"TRYON_MODEL_PRICES": '{"fal-ai/not-in-the-catalogue": 0.05}'}, "TRYON_MODEL_PRICES"),
        ({"TRYON_MODEL_PRICES": '{"fal-ai/fashn/tryon/v1.6": -1}'}, "TRYON_MODEL_PRICES"),
        ({"TRYON_REQUEST_TIMEOUT": "0"}, "TRYON_REQUEST_TIMEOUT"),
    ],
)
def test_invalid_values_fail_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert variable in str(caught.value)


def test_auto_uses_every_provider_with_credentials_in_order():
    assert Settings.from_env({}).providers == ("local",)
    everything = {"FAL_KEY": "f", "REPLICATE_API_TOKEN": "r", "RUNPOD_ENDPOINT_ID": "ep1", "RUNPOD_API_KEY": "p"}
    assert Settings.from_env(everything).provider == "fal,replicate,runpod"
    assert Settings.from_env({"REPLICATE_API_TOKEN": "r"}).provider == "replicate"
    chosen = Settings.from_env({**everything, "TRYON_PROVIDER": " Replicate , fal "})
    assert chosen.providers == ("replicate", "fal")


def test_provider_secrets_stay_out_of_repr():
    settings = Settings.from_env({"REPLICATE_API_TOKEN": "r8_secret_value", "RUNPOD_ENDPOINT_ID": "ep1",
                                  "RUNPOD_API_KEY": "rp_secret_value"})
    assert "r8_secret_value" not in repr(settings) and "rp_secret_value" not in repr(settings)


def test_fal_settings_from_env():
    settings = Settings.from_env({
        "TRYON_UPLOAD_TTL": "12h", "TRYON_REQUEST_TIMEOUT": "30", "TRYON_FAL_MODEL": "fal-ai/other/edit",
        "TRYON_FAL_REST_URL": "https://gateway.internal/", "TRYON_FAL_CDN_URL": "https://cdn.internal",
    })
    assert settings.upload_ttl_s == 43200 and settings.request_timeout_s == 30
    assert settings.fal_model == "fal-ai/other/edit"
    assert settings.fal_rest_url == "https://gateway.internal" and settings.fal_cdn_url == "https://cdn.internal"


@pytest.mark.parametrize("text, seconds", [("3600", 3600), ("90m", 5400), ("1d", 86400), ("2h", 7200)])
def test_upload_ttl_units(text, seconds):
    assert Settings.from_env({"TRYON_UPLOAD_TTL": text}).upload_ttl_s == seconds


def test_tryon_fal_model_takes_a_fallback_list_and_prices_override_the_catalogue():
    settings = Settings.from_env({"TRYON_FAL_MODEL": " fal-ai/nano-banana-pro/edit , fal-ai/fashn/tryon/v1.6,fal-ai/fashn/tryon/v1.6",
                                  "TRYON_MODEL_PRICES": '{"fal-ai/fashn/tryon/v1.6": 0.05}'})
    assert settings.fal_model == "fal-ai/nano-banana-pro/edit"
    assert settings.fal_fallback_models == ("fal-ai/fashn/tryon/v1.6",)  # each once, in order
    assert settings.model_prices == {"fal-ai/fashn/tryon/v1.6": 0.05}
