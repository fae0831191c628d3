"""The Dashboard tab: counts per label, the pending items' probabilities, progress, health, export.

The probability histogram reads the review loop's live probabilities of the pending items, the
same numbers the Review panel orders by and "Approve them" acts on. It read the stored
suggestion rows before: those lag the live blend (the browser app stores refreshed rows from a
thread, and a new review loop rewrites the rows of the previous head), and they held confirmed
items too, so the chart changed with no decision between two looks (34 items at 0.9-1.0, then 0).
"""

from __future__ import annotations

from pathlib import Path

from index.errors import LabelchatError
from tools.wording import counted

from . import quality_views, views
from .errors import friendly

CONFIRMED, SUGGESTED = "confirmed", "confirmed + suggestions"
EXPORT_INCLUDE = {CONFIRMED: "confirmed", SUGGESTED: "suggested"}
PENDING_FLOOR = 1e-9  # every pending item has a best suggestion above this


def pending_best_scores(state) -> list[float]:
    """The best-suggestion probability of every pending item, from the live review loop."""
    with state.review_lock:
        return [p for _, _, p in state.reviewer().candidates(PENDING_FLOOR)]


class DashboardTab:
    def __init__(self, state):
        import gradio as gr

        self.state = state
        with gr.Tab("Dashboard", elem_id="lc-dashboard-tab") as self.tab:
            self.refresh = gr.Button("Refresh", elem_id="lc-dashboard-refresh")
            self.summary = gr.Markdown(elem_id="lc-summary")
            with gr.Row():
                # min_width: side by side on a wide window, one above the other on a phone
                with gr.Column(min_width=340):
                    self.per_label = gr.BarPlot(x="label", y="items", color="kind", title="Items per label",
                                                height=300, visible=False, elem_id="lc-per-label")
                    self.per_label_empty = gr.HTML(views.placeholder_html("per_label"), elem_id="lc-per-label-empty")
                with gr.Column(min_width=340):
                    self.histogram = gr.BarPlot(x="probability", y="items", title="Best-suggestion probability, pending items",
                                                height=300, visible=False, elem_id="lc-histogram")
                    self.histogram_empty = gr.HTML(views.placeholder_html("histogram"), elem_id="lc-histogram-empty")
            self.progress = gr.LinePlot(x="time", y="confirmed", title="Labelling progress: items confirmed",
                                        height=260, visible=False, elem_id="lc-progress", x_label_angle=-30)
            self.progress_empty = gr.HTML(views.placeholder_html("progress"), elem_id="lc-progress-empty")
            health_go = gr.Button("Check dataset health")  # duplicates, outliers, blank or tiny images
            health_info = gr.HTML(elem_id="lc-health")
            with gr.Row():
                export_dir = gr.Textbox(label="Export to folder", scale=3)
                export_format = gr.Dropdown(["imagefolder", "csv", "jsonl", "coco", "hf"], value="imagefolder",
                                            label="Format", scale=1)
                export_include = gr.Dropdown(list(EXPORT_INCLUDE), value=CONFIRMED, label="Include", scale=1)
                export_overwrite = gr.Checkbox(False, label="Replace an earlier export", scale=1)
                export_go = gr.Button("Export", scale=1)
            export_info = gr.Markdown(elem_id="lc-export-info")
        self.outputs = [self.summary, self.per_label, self.per_label_empty, self.histogram, self.histogram_empty,
                        self.progress, self.progress_empty]
        self.refresh.click(friendly(self.values), None, self.outputs, api_name="dashboard")
        self.tab.select(friendly(self.values), None, self.outputs)  # current when opened
        health_go.click(friendly(self.health), None, health_info, api_name="health")
        export_go.click(self.export, [export_dir, export_format, export_include, export_overwrite], export_info)

    def values(self):
        import gradio as gr

        store = self.state.project.store
        counts = store.status()
        columns, rows = views.label_counts_table(counts)
        h_columns, h_rows = views.probability_histogram(pending_best_scores(self.state))
        p_columns, p_rows = views.progress_table(store.decisions())
        text = (f"**{counts.items}** images · " + " · ".join(f"{n} {k}" for k, n in counts.by_status.items()) +
                f" · {counted(counts.decisions, 'decision')}")
        stacked = [c.confirmed + c.suggested for c in counts.by_label]
        has_labels, has_scores = any(stacked), any(r[1] for r in h_rows)
        return (text,
                gr.BarPlot(_frame(columns, rows, numeric=["items"]), y_lim=_headroom(stacked), visible=has_labels),
                gr.update(visible=not has_labels),
                gr.BarPlot(_frame(h_columns, h_rows, numeric=["items"]), y_lim=_headroom([r[1] for r in h_rows]),
                           visible=has_scores),
                gr.update(visible=not has_scores),
                gr.LinePlot(_frame(p_columns, p_rows, numeric=["confirmed"]), y_lim=_headroom([r[1] for r in p_rows]),
                            visible=bool(p_rows)),
                gr.update(visible=not p_rows))

    def health(self):
        from tools.quality.health import dataset_health

        return quality_views.health_html(dataset_health(self.state.reviewer()), self.state.image_url)

    def export(self, folder, fmt, include, overwrite):
        """Exports, or says why not; a failed export never leaves an earlier success on show."""
        from tools.export import export_dataset

        if not (folder or "").strip():
            return "**Not exported:** give a folder to export into."
        target = Path(folder.strip()).expanduser()
        target = target if target.is_absolute() else (Path.cwd() / target)
        try:
            report = export_dataset(self.state.project, target, fmt, include=EXPORT_INCLUDE[include],
                                    overwrite=overwrite)
        except LabelchatError as exc:  # its hints name the CLI's options: name the controls instead
            message = str(exc).replace("pass --overwrite", "tick 'Replace an earlier export'").replace(
                "--overwrite", "'Replace an earlier export'").replace(
                "use --include suggested", f"choose '{SUGGESTED}'")
            return f"**Not exported:** {message}"
        except OSError as exc:
            return f"**Not exported:** could not write to {target}: {exc.strerror or exc}. Choose a folder you can write to."
        return f"Exported **{counted(report.count, 'image')}** as {report.format.value} to `{report.folder}`."


def _frame(columns: list[str], rows: list[list], numeric=(), temporal=()):
    """A DataFrame whose column types do not depend on its having rows. Gradio's plots take an
    axis's kind from them: the training curves, first drawn empty, got a list of names for an
    epoch axis and drew no line for the numbers that came later (seen in the browser)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype({**{c: "float64" for c in numeric}, **{c: "datetime64[ns]" for c in temporal}})


def _headroom(values) -> list[float]:
    """y limits that leave a tenth above the tallest bar, which otherwise touched the frame."""
    return [0, max(1.0, max(values, default=0) * 1.1)]
