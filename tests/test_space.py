"""The repository is a valid Hugging Face Space as it stands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.request

import gradio
import pytest

from conftest import ROOT, free_port


def front_matter() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter"
    fields = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip().strip('"')
    return fields


def requirement_names(lines) -> dict[str, str]:
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            found[name] = line.replace(" ", "")
    return found


def test_front_matter_names_the_gradio_sdk_pinned_everywhere():
    fields = front_matter()
    assert fields["sdk"] == "gradio"
    assert fields["app_file"] == "app.py" and (ROOT / "app.py").exists()
    assert fields["sdk_version"] == gradio.__version__
    pins = requirement_names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert pins["gradio"] == f"gradio[mcp,oauth]=={fields['sdk_version']}"
    assert fields["hf_oauth"] == "true"  # Spaces then sets OAUTH_CLIENT_ID, OPENID_PROVIDER_URL, ... for gradio
    assert fields["python_version"].startswith("3.")
    assert fields["title"] and fields["short_description"]


def test_requirements_txt_is_in_step_with_pyproject():
    from_pyproject = requirement_names(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    from_requirements = requirement_names((ROOT / "requirements.txt").read_text().splitlines())
    assert from_requirements == from_pyproject


@pytest.mark.slow
def test_requirements_install_into_a_fresh_venv_and_the_app_starts_with_only_fal_key(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(ROOT / "requirements.txt")],
        capture_output=True, text=True, timeout=900,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    port = free_port()
    # What a Space gives the app: its secrets as environment variables, nothing else of ours.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "FAL_KEY": "space-secret-key-123",
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    process = subprocess.Popen([str(python), "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2) as response:
                    config = response.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(0.5)
        assert "footer_remote" in config and "FAL · fal-ai/nano-banana-pro/edit" in config and "preview-banner" not in config  # FAL_KEY alone selects the real model
        assert "space-secret-key-123" not in config
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0]
    assert "space-secret-key-123" not in output
