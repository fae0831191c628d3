"""How the browser app shows an error: a person's mistake or a refusal of the project (a
`LabelchatError`) as a short message in the page and one line in the log; only an unexpected
error (a bug) gets its traceback, from Gradio as before."""

from __future__ import annotations

import functools
import inspect
import logging

from index.errors import LabelchatError

log = logging.getLogger("labelchat.ui")


def shown(message: str):
    """The Gradio error for a message a person can act on: shown, logged in one line, no traceback."""
    import gradio as gr

    log.warning("shown to the user: %s", message)
    return gr.Error(message, print_exception=False)


def friendly(handler):
    """`handler` with its LabelchatErrors turned into `shown` errors (generators too)."""
    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def stream(*args, **kwargs):
            try:
                yield from handler(*args, **kwargs)
            except LabelchatError as exc:
                raise shown(in_the_browser(exc)) from None
        return stream

    @functools.wraps(handler)
    def call(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except LabelchatError as exc:
            raise shown(in_the_browser(exc)) from None
    return call


def in_the_browser(exc: LabelchatError) -> str:
    """The error's words for a person in the browser: advice that names a command or an option
    is said as what to ask for or click there (prompts/advice.yaml, as the chat does)."""
    from agent.advice import rewrite

    return rewrite(str(exc), "web")
