"""The web side of tryon: the gradio page (components, views, events, layout)."""
