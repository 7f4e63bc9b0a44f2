"""The one rule for files a client names: only what the app handed to that client's session.

gradio has a check of its own for client-supplied file paths (`processing_utils._check_allowed`:
"it was not uploaded by a user"), but it returns early unless `Blocks.has_launched` is set, which
`launch()` does and `gr.mount_gradio_app` does not (gradio 6.31). Under mount, any event, public or
private, would copy any server file (`/proc/self/environ`, the Redis append-only file) into the
cache and hand it back. `GatedBlocks.process_api` is the one method every event passes through
(the queue, `/call`, `/run`, MCP), so the rule is enforced there, before gradio touches a path:

- a file named in an input (any component, any nesting, with or without gradio's `FileData` tag)
  must be in gradio's upload folder and handed to this session (an upload, an earlier answer), or
  be one of the page's own public files (the examples); an https URL is left to gradio, which
  fetches it through safehttpx (public addresses only);
- every file an answer hands out is noted as this session's, so the session can read it at
  `/gradio_api/file=` (`session_files.SessionFiles`) and give it back as a later input.
"""

from __future__ import annotations

from typing import Any, Iterator

import gradio as gr
from gradio_client.utils import is_http_url_like

from ..errors import InvalidRequest, pick_language
from .session_files import FileOwners, canonical, resolved_under, session_of


def file_refs(value: Any) -> Iterator[dict]:
    """Every dict in a (possibly nested) value that names a file by its "path"."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("path"), str):
                yield node
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


class FileGate:
    def __init__(self, owners: FileOwners, upload_root: str):
        self.owners = owners
        self.roots = [canonical(upload_root)]

    def may_use(self, path: str, session: str | None) -> bool:
        """A client may name `path` as an input: gradio stored it, and this session was given it."""
        stored = resolved_under(path, self.roots)
        return stored is not None and self.owners.may_read(stored, session)

    def refused(self, inputs: Any, session: str | None) -> bool:
        """True when any file named in `inputs` is not this session's to use."""
        for ref in file_refs(inputs):
            path = ref["path"]
            # Exactly gradio's own test (client_utils.is_http_url_like, case-sensitive): anything it
            # does not take for a URL it opens as a path, "HTTPS://x/../../etc/passwd" included.
            if is_http_url_like(path) and path.startswith("https://"):
                continue  # gradio downloads it through safehttpx, into the cache
            if not self.may_use(path, session):
                return True
        return False

    def grant(self, outputs: list, blocks: list, session: str | None) -> None:
        """Note every file in an answer (gradio has already copied it into its cache) as the session's.
        Only file components count: a JSON or State value is whatever the client sent, and a path
        written inside it is text, not a file the app handed out."""
        if session is None:
            return
        for value, block in zip(outputs or [], blocks):
            if not isinstance(block, TEXT_VALUED):
                for path in self._cached_files(value):
                    self.owners.grant(path, session)

    def publish(self, value: Any) -> None:
        """Files in the page itself (the examples' pictures), readable by every session."""
        for path in self._cached_files(value):
            self.owners.publish(path)

    def _cached_files(self, value: Any) -> Iterator[str]:
        """Paths of gradio-tagged files in the upload folder."""
        for ref in file_refs(value):
            if (ref.get("meta") or {}).get("_type") == "gradio.FileData":
                stored = resolved_under(ref["path"], self.roots)
                if stored is not None:
                    yield stored


TEXT_VALUED = (gr.JSON, gr.State, gr.Textbox, gr.Markdown, gr.Dataframe)


class GatedBlocks(gr.Blocks):
    """gr.Blocks whose every event applies the FileGate (see the module docstring)."""

    file_gate: FileGate

    async def process_api(self, block_fn, inputs, state=None, request=None, *args, **kwargs):
        first = request[0] if isinstance(request, list) and request else request
        session = session_of(first)
        if self.file_gate.refused(inputs, session):
            headers = getattr(first, "headers", None) or {}
            message = InvalidRequest("file_not_yours").message(pick_language(headers.get("accept-language")))
            raise gr.Error(message, print_exception=False)
        output = await super().process_api(block_fn, inputs, state, request, *args, **kwargs)
        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn
        self.file_gate.grant(output.get("data"), list(fn.outputs), session)
        return output
