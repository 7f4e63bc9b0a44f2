"""The prompts: one place, one schema, and what the model actually receives."""

from __future__ import annotations

import pytest

from tryon.config import Settings
from tryon.prompts import DEFAULT_SYNC_PROMPT, multi_garment_prompt, sync_prompt
from tryon.providers import build_provider
from tryon.service import TryOnService


def test_the_sync_prompt_names_person_and_garment_figures():
    assert "Figure 1" in DEFAULT_SYNC_PROMPT and "Figure 2" in DEFAULT_SYNC_PROMPT
    assert sync_prompt() == DEFAULT_SYNC_PROMPT


@pytest.mark.parametrize("count", [2, 3, 4])
def test_one_call_prompt_names_every_garment_figure(count):
    prompt = multi_garment_prompt(count)
    assert "Figure 1" in prompt
    for figure in range(2, count + 2):
        assert f"Figure {figure}" in prompt
    assert f"Figure {count + 2}" not in prompt


def test_one_garment_in_one_call_is_the_sync_prompt():
    assert multi_garment_prompt(1) == DEFAULT_SYNC_PROMPT
    with pytest.raises(ValueError):
        multi_garment_prompt(0)


def test_a_custom_prompt_is_what_the_model_receives(fal_server, tmp_path, person_png, garment_pngs):
    custom = "Put the garment of Figure 2 on the person of Figure 1, studio light."
    settings = Settings.from_env({**fal_server.env(), "TRYON_PROMPT": custom, "TRYON_DATA_DIR": str(tmp_path)})
    TryOnService(settings, build_provider(settings)).try_on_sync(person_png, garment_pngs[:2])
    assert [body["prompt"] for body in (r.body for r in fal_server.submits)] == [custom, custom]
