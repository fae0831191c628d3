"""The agent's tools: thin adapters over the plain functions in `tools/`, one module per family.

Each returns (short text for the model, typed artifact for the UI). Every change to the
project goes through the context's workbench (tools/workbench.py). A LabelchatError becomes
an error observation the model and the person see; the store's transactions mean a failing
tool leaves nothing half-written. Only this package imports langchain_core.tools.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool

from . import images, labels, models, project, review, rounds
from .confirm import NEEDS_CONFIRMATION, confirmation_question
from .context import AgentContext
from .models import worse_than_zero_shot

FAMILIES = (images, labels, review, project, models, rounds)
ORDER = ["add_images", "crawl", "set_labels", "add_labels", "suggest_labels", "review_batch", "decide", "correct",
         "correct_many", "accept_above", "similar", "export_dataset", "undo", "status", "train_model", "use_model",
         "model_versions", "suspect_labels", "start_review_round", "review_round_report"]  # as the prompts list them


def build_tools(ctx: AgentContext) -> list[BaseTool]:
    """Every tool, bound to `ctx`."""
    built = {t.name: t for family in FAMILIES for t in family.tools(ctx)}
    return [built[name] for name in ORDER]


__all__ = ["AgentContext", "NEEDS_CONFIRMATION", "build_tools", "confirmation_question", "worse_than_zero_shot"]
