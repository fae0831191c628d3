"""The chat's opening turn: what the project holds (images, labels, model) and three things
to say next, chosen from where the project stands. The wording is in prompts/welcome.yaml."""

from __future__ import annotations

import prompts
from index.project import Project


def welcome(project: Project, model: str | None, audience: str) -> str:
    config = prompts.load_yaml("welcome.yaml")
    store = project.store
    counts = store.status()
    labels = store.label_set().names
    active = next((v.name for v in store.model_versions() if v.active), None)
    suggested = sum(c.suggested for c in counts.by_label)
    confirmed = counts.by_status.get("confirmed", 0)
    facts = config["holds"].format(
        name=project.name, items=counts.items, confirmed=confirmed,
        pending=counts.by_status.get("pending", 0), suggested=suggested,
        labels=", ".join(labels) if labels else config["no_labels"],
        model=active or model or config["default_model"])
    stage = ("empty" if not counts.items else "no_labels" if not labels else
             "unlabelled" if not suggested and not confirmed else
             "train" if confirmed >= config["train_after"] and not active else "review")
    top = max(counts.by_label, key=lambda c: c.suggested).label if counts.by_label else "cat"
    ideas = [idea.format(label=top) for idea in config["next"][stage]]
    extra = config["extra"].get(audience, "")
    return "\n".join([facts, config["say"], *(f"- `{idea}`" for idea in ideas[:3]), extra]).strip()
