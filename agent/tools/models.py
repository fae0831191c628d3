"""Tools for trained model versions: train one, choose who suggests, list them."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.tools import BaseTool, tool

from tools.wording import counted

from .context import AgentContext


def tools(ctx: AgentContext) -> list[BaseTool]:
    store = ctx.project.store  # for reading: changes go through ctx.workbench
    bench = ctx.workbench

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def train_model(kind: Literal["probe", "finetune"] = "probe", epochs: int = 10,
                    activate: bool = True) -> tuple[str, Any]:
        """Train a model on the confirmed labels and (by default) use it for the suggestions.

        Args:
            kind: probe (a linear classifier on the image features: seconds) or finetune (the whole
                image model: best on a GPU, slow on a CPU).
            epochs: For finetune, the most passes over the confirmed images.
            activate: Use the new model for every suggestion when it is done.
        """
        from tools.training import TrainConfig

        def progress(event) -> None:
            if event.phase in ("epoch", "step") and event.epochs:
                ctx.progress(event.epoch - (event.phase == "step"), event.epochs, event.message or "training")

        report, done = bench.train(TrainConfig(kind=kind, epochs=epochs, model=ctx.model), activate=activate,
                                   on_progress=progress, should_stop=ctx.should_stop)
        version = report.version
        text = (f"Trained {version.name}: {_percent(version.metrics.get('accuracy'))} right on "
                f"{version.metrics.get('holdout_items')} held-out confirmed images (zero-shot: "
                f"{_percent(version.metrics.get('zero_shot_accuracy'))}).")
        if done is not None:
            text += f" It now suggests the labels of all {counted(done.rescored, 'image')}."
            text += worse_than_zero_shot(version.metrics)
        else:
            text += f" Say 'use {version.name}' to let it suggest labels."
        return text, report

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def use_model(version: str) -> tuple[str, Any]:
        """Choose which trained model version suggests labels, or go back to zero-shot.

        Args:
            version: A version name or number (e.g. "v2-probe" or "2"), or "zero-shot".
        """
        done = bench.use_version(version)
        name = done.version.name if done.version else "zero-shot"
        return f"Suggestions now come from {name}; re-scored {counted(done.rescored, 'image')}.", done

    @tool(parse_docstring=True, response_format="content_and_artifact")
    def model_versions() -> tuple[str, Any]:
        """List the trained model versions with their held-out accuracy, and which one is in use."""
        versions = store.model_versions()
        if not versions:
            return "No trained models yet. Confirm some labels, then say 'train a model'.", versions
        in_use = bench.scoring().version  # not an active version whose labels changed, nor with --model
        why = "a --model was given" if bench.model else "its labels or features no longer match the project's"
        parts = [f"{v.name}{_use_note(v, in_use, why)}: {_percent(v.metrics.get('accuracy'))} "
                 f"vs zero-shot {_percent(v.metrics.get('zero_shot_accuracy'))}" for v in versions]
        return "Model versions: " + "; ".join(parts) + ".", versions

    return [train_model, use_model, model_versions]


def _use_note(version, in_use, why: str) -> str:
    if in_use is not None and version.id == in_use.id:
        return " (in use)"
    if version.active:
        return f" (chosen, but not in use: {why}; suggestions are zero-shot)"
    return ""


def worse_than_zero_shot(metrics: dict) -> str:
    """A warning when a new version was less accurate than zero-shot on the held-out items ('' if not)."""
    accuracy, zero_shot = metrics.get("accuracy"), metrics.get("zero_shot_accuracy")
    if accuracy is None or zero_shot is None or accuracy >= zero_shot:
        return ""
    return (f" Note: on the held-out images it was less accurate than zero-shot ({_percent(accuracy)} against "
            f"{_percent(zero_shot)}); say 'go back to zero-shot' to stop using it, or confirm more images and "
            f"train again.")


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"
