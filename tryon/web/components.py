"""gradio components with tryon's own input handling (rendered by gradio's stock frontend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr


class PhotoInput(gr.Image):
    """A gr.Image that hands the raw upload to tryon's intake instead of decoding it itself.

    gr.Image opens every upload with Pillow before the handler runs, so a
    corrupt or non-image file fails there with gradio's generic error. Our
    intake gives the specific reason ("truncated", "not an image", ...).
    """

    is_template = True  # render with the stock Image frontend component

    def __init__(self, **kwargs: Any):
        super().__init__(type="filepath", image_mode=None, format="png", **kwargs)

    def get_config(self, cls=None):
        # The frontend's props are read off the __init__ signature: use gr.Image's, not ours.
        return super().get_config(cls or gr.Image)

    def preprocess(self, payload):  # type: ignore[override]
        if payload is None:
            return None
        if payload.url and payload.url.startswith("data:"):
            return payload.url
        # A Path, not a str: the service reads files only from a Path, which only a gradio
        # input (checked by the FileGate) can be; text from REST or MCP is never opened as a path.
        return Path(payload.path)


class ResultCount(gr.Slider):
    """The number-of-results slider; its value reaches Outfit.parse unchecked.

    gr.Slider's own bounds check answers API callers in English only and logs a
    traceback for what is only a bad input; Outfit.parse names the limit in the
    user's language.
    """

    is_template = True  # render with the stock Slider frontend component

    def get_config(self, cls=None):
        return super().get_config(cls or gr.Slider)

    def preprocess(self, payload):  # type: ignore[override]
        return payload


class LoginButton(gr.LoginButton):
    """"Sign in with Hugging Face" in the page's languages (text.py keys `sign_in`, `sign_out`).

    gr.LoginButton cannot take an I18n label: its click script chooses /login/huggingface or /logout
    by comparing the label the browser shows (already translated) with the untranslated marker, so
    every click went to /logout and nobody could sign in; and it formats logout_value with the user
    name on the server, where an I18n label is only a key, so a signed-in visitor read "Sign out ({})".
    Here the click script knows every translation of the sign-in label, and the signed-in label is
    written on the server in the request's language (Accept-Language, as for the status line).
    """

    is_template = True

    def __init__(self, sign_in_key: str = "sign_in", sign_out_key: str = "sign_out", **kwargs: Any):
        from .text import I18N

        self.sign_in_key, self.sign_out_key = sign_in_key, sign_out_key  # before super(): it calls activate()
        super().__init__(I18N(sign_in_key), logout_value=I18N(sign_out_key), **kwargs)

    def get_block_name(self) -> str:
        return "button"  # the stock Button frontend, as gr.LoginButton's

    def get_config(self, cls=None):
        return super().get_config(cls or gr.LoginButton)

    def activate(self):
        import json

        from gradio.components.login_button import _js_handle_redirect

        from .text import STRINGS

        labels = json.dumps([self.value, *(words[self.sign_in_key] for words in STRINGS.values())])
        script = _js_handle_redirect.replace("buttonValue === BUTTON_DEFAULT_VALUE", f"{labels}.includes(buttonValue)")
        self.click(fn=None, inputs=[self], outputs=None, js=script.replace("REDIRECT_URL", self.page))
        self.attach_load_event(self._check_login_status, None)

    def _check_login_status(self, request: gr.Request):  # type: ignore[override]
        from gradio import oauth

        from ..errors import pick_language
        from .text import STRINGS

        session = getattr(request, "session", None) or getattr(request.request, "session", None)
        info = oauth._get_valid_oauth_info_from_session(session) if session is not None else None
        if info is None:
            return gr.update(value=self.value, interactive=True)
        words = STRINGS.get(pick_language(request.headers.get("accept-language")), STRINGS["en"])
        return gr.update(value=words[self.sign_out_key].format(info["userinfo"]["preferred_username"]), interactive=True)
