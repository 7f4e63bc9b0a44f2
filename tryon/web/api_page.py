"""gradio's "Use via API" page (the footer's "api" link, `?view=api`) in plain words, with our examples.

What gradio 6.31 shows, and where it comes from:

- 'The input value that is provided in the "[object Object]" Image component.' The page writes
  `The input value that is provided in the "{label}" {component} component. {description}` for
  each parameter, from `/gradio_api/info` (`Blocks.get_api_info`). `label` is the component's
  config label, which for our translated labels is a `gr.I18n` key (`I18nData`); the page
  translates it in the layout but not there, so it prints the object. `description` is
  `python_type.description`, the component's `api_info()["additional_description"]` ("A local
  filepath or publicly available URL." for an image); the docstring's `Args:` reach only MCP.
- The example uses gradio's bus.png: `example_input` is `component.example_inputs()`, which for
  `gr.Image` is `handle_file(<bus.png on GitHub>)`; the Python, JavaScript, curl and CLI snippets
  are built from it on the server (`gradio_client.snippet`).
- "p50: 0 ms": the page reads `/monitoring/summary` (the queue's `compute_analytics_summary`). A
  call that fails records no duration, and `np.percentile` over a column with that gap is NaN,
  sent as null, which the page's formatter turns into "0 ms" (`Math.round(null * 1000)`); it stays
  so for that endpoint until 10,000 newer events push the failed one out. A failed call's status is
  also summarised before it is set (the summary is cached per new event), so its success rate reads
  0 % or "null". Our inputs fail often by design (a bad photo is a `gr.Error`), so the number is
  wrong most of the time. Hidden with `enable_monitoring=False` (`LAUNCH_OPTIONS`): the page then
  gets 403 and shows no traffic line. The true figures are in the Metrics tab and `/metrics`.

`PlainApiPage` is a Blocks mixin that rewrites the API info it hands out (the page,
`gradio_client`'s `view_api`, the CLI snippet; MCP's schemas use only `type`, which is untouched):

- each label in English words (the `gr.I18n` English text; labels used twice in one endpoint get
  the parameter name: "Category (category_2)"; gradio's stand-ins `parameter_12` / `value_12`
  become the parameter name, or the name a `Returns:` line gives);
- each description from the handler's docstring `Args:` (what `documented` writes), followed by
  gradio's own note on the type;
- the photos' examples pointing at our own pictures: `handle_file('assets/person_astronaut.png')`
  for the person, `assets/garment_tshirt_red.png` for a garment. A path relative to a checkout of
  this repository, as in the README: gradio_client uploads a local file itself, so the snippet
  works offline, against a local server or a Space alike. A URL would not: a URL on the internet
  is useless offline, and a URL of this server is fetched by the server itself through gradio's
  SSRF guard, which refuses loopback and private addresses (and the server's own public name
  depends on who asks). Known limit: the JavaScript snippet `fetch`es the same relative path, and
  the curl snippet sends it as a server path, which the file gate refuses; both need the file
  uploaded first (`POST /gradio_api/upload`), as any local file does.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from gradio import utils as gr_utils
from gradio.i18n import I18nData

PERSON_EXAMPLE = "assets/person_astronaut.png"
GARMENT_EXAMPLE = "assets/garment_tshirt_red.png"
# Parameter name -> example file, relative to the repository root (where the README's scripts run).
EXAMPLE_FILES = {"person": PERSON_EXAMPLE, **{f"garment_{n}": GARMENT_EXAMPLE for n in range(1, 5)},
                 "image": GARMENT_EXAMPLE}
# Merge into what goes to mount_gradio_app(): gradio's latency line on the API page is wrong
# (see above), and the real numbers are ours (Metrics tab, /metrics).
LAUNCH_OPTIONS = {"enable_monitoring": False}

_STAND_IN = re.compile(r"^(parameter|value)_\d+$")  # gradio's label for a component without one


def example_file(path: str) -> dict[str, Any]:
    """A FileData example for the API page: its snippets write `handle_file('<path>')`."""
    return {"path": path, "url": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


class PlainApiPage:
    """Blocks mixin, before gr.Blocks (or GatedBlocks) in the bases: `get_api_info` in plain words.

    English labels come from the app's `gr.I18n` (`mount_gradio_app(i18n=...)` sets it on the
    Blocks before anything asks for the API info), or `api_i18n` if set on the class.
    """

    api_i18n = None  # a gr.I18n; None: the one mount_gradio_app() was given
    api_examples: dict[str, str] = EXAMPLE_FILES

    def get_api_info(self, all_endpoints: bool = False, page: str | None = None):
        info = super().get_api_info(all_endpoints=all_endpoints, page=page)  # type: ignore[misc]
        i18n = self.api_i18n or getattr(self, "i18n_instance", None)
        english = (getattr(i18n, "translations", None) or {}).get("en", {})
        docs = {f"/{fn.api_name}": gr_utils.get_function_description(fn.fn)
                for fn in self.fns.values() if fn.fn is not None and fn.api_name}  # type: ignore[attr-defined]
        for name, endpoint in info.get("named_endpoints", {}).items():
            _, args, returns = docs.get(name, ("", {}, []))
            plain_endpoint(endpoint, english, args, returns, self.api_examples)
        return info


def plain_endpoint(endpoint: dict, english: dict[str, str], args: dict[str, str], returns: list[str],
                   examples: dict[str, str]) -> None:
    """One endpoint's parameters and returns, in place: labels, descriptions, examples."""
    parameters = endpoint.get("parameters", [])
    labels = [plain_label(p.get("label"), english) or p.get("parameter_name", "") for p in parameters]
    twice = {label for label, count in Counter(labels).items() if count > 1}
    for parameter, label in zip(parameters, labels):
        name = parameter.get("parameter_name") or label
        parameter["label"] = f"{label} ({name})" if label in twice and label != name else label
        said = (args.get(name) or "").strip()
        if said:
            python_type = parameter.setdefault("python_type", {})
            own = (python_type.get("description") or "").strip()
            python_type["description"] = " ".join(part for part in (_sentence(said), own) if part)
        if name in examples and _is_file_example(parameter.get("example_input")):
            parameter["example_input"] = example_file(examples[name])
    outputs = endpoint.get("returns", [])
    # A docstring's "Returns:" with one "name: what it is" line per output names them, in order.
    named = [line.lstrip("- ").split(":", 1)[0].strip() for line in returns] if len(returns) == len(outputs) else []
    for n, output in enumerate(outputs):
        label = (named[n] if named and named[n] else None) or plain_label(output.get("label"), english)
        output["label"] = label or ("result" if len(outputs) == 1 else f"result_{n + 1}")


def plain_label(label: Any, english: dict[str, str]) -> str | None:
    """A label as words: an I18n key's English text (or the key itself, as words); None for none
    or gradio's stand-in."""
    key = None
    if isinstance(label, I18nData):
        key = label.key
    elif isinstance(label, dict) and label.get("__type__") == "translation_metadata":
        key = str(label.get("key") or "")
    elif isinstance(label, str) and label.startswith("__i18n__"):  # str(I18nData)
        match = re.search(r'"key":\s*"([^"]*)"', label)
        key = match.group(1) if match else ""
    if key is not None:
        return english.get(key) or key.replace("_", " ").capitalize() or None
    if not label or not isinstance(label, str) or _STAND_IN.match(label):
        return None
    return label


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _is_file_example(example: Any) -> bool:
    return isinstance(example, dict) and (example.get("meta") or {}).get("_type") == "gradio.FileData"
