"""The README's Python snippets run unchanged (only the address is the test app's)."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
README_URL = "http://127.0.0.1:7860/"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def run(snippet: str, url: str, monkeypatch) -> dict:
    monkeypatch.chdir(ROOT)  # the snippets name assets/ relative to the repository
    namespace: dict = {}
    exec(compile(snippet.replace(README_URL, url), "README.md", "exec"), namespace)
    return namespace


def test_the_readme_has_the_documented_snippets():
    text = "\n".join(snippets())
    for endpoint in ("/try_on", "/try_on_variants", "/upload", "/submit_job", "/job_status", "/compare"):
        assert f'api_name="{endpoint}"' in text, endpoint
    assert 'auth=("api"' in text


@pytest.mark.parametrize("index", range(len(snippets())))
def test_each_snippet_runs(index, app_server, rest_app_env, monkeypatch):
    snippet = snippets()[index]
    if 'auth=("api"' in snippet:
        url, key = rest_app_env
        monkeypatch.setenv("TRYON_API_KEY", key)
        namespace = run(snippet, url, monkeypatch)
        assert namespace["reference"].startswith("https://")
        return
    namespace = run(snippet, app_server.url, monkeypatch)
    if "looks" in namespace:  # the outfit snippet: jeans, then T-shirt, then jacket; two results
        assert len(namespace["looks"]) == 2
        assert [step["field"] for step in namespace["timings"]["order"]] == ["garment_2", "garment_3", "garment_1"]
    elif "timings" in namespace:
        assert namespace["timings"]["garments"] == 2 and namespace["reference"].startswith("local:")
    if "side_by_side" in namespace:  # the models snippet: FASHN by keyword, then two models compared
        assert namespace["record"]["model"] == "fal-ai/fashn/tryon/v1.6" and namespace["record"]["estimate"]["usd"] == 0.075
        assert [r["model"] for r in namespace["records"]] == ["fal-ai/nano-banana-2/edit", "fal-ai/fashn/tryon/v1.6"]
        assert len(namespace["side_by_side"]) == 2
    if "status" in namespace:
        assert namespace["status"]["status"] == "done"
