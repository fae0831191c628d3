"""Advice for where the person is: a tool error's command-line options become what to say or
click in the chat (prompts/advice.yaml). The CLI's own commands keep the options."""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache

import prompts

from .steps import ErrorStep, FinalAnswer, NeedsConfirmation, ToolResult

FIELDS = {ErrorStep: "message", ToolResult: "text", FinalAnswer: "text", NeedsConfirmation: "question"}


@lru_cache(maxsize=1)
def _rewrites() -> list[dict]:
    return prompts.load_yaml("advice.yaml")["rewrites"]


def rewrite(text: str, audience: str) -> str:
    for rule in _rewrites():
        text = re.sub(rule["pattern"], rule[audience], text)
    return text


def for_audience(step, audience: str):
    """The step with its text rewritten for `audience` ("web" or "terminal")."""
    name = FIELDS.get(type(step))
    if name is None:
        return step
    text = getattr(step, name)
    changed = rewrite(text, audience)
    return step if changed == text else dataclasses.replace(step, **{name: changed})
