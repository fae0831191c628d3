"""Text that steers models, kept as data and loaded with importlib.resources.

`render` uses Jinja's StrictUndefined, so a template that needs a variable the
caller did not pass fails loudly instead of producing a silently wrong prompt.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def load_yaml(name: str) -> dict:
    import yaml

    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    return yaml.safe_load(text)


def render(template: str, **variables: object) -> str:
    from jinja2 import Environment, StrictUndefined

    return Environment(undefined=StrictUndefined, autoescape=False).from_string(template).render(**variables)
