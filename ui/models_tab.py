"""The Models tab: train a probe or a fine-tune in the background, see its curves and confusion
matrix, choose which version suggests labels."""

from __future__ import annotations

from tools.wording import counted

from . import views
from .dashboard import _frame
from .errors import friendly, shown


class ModelsTab:
    def __init__(self, state):
        import gradio as gr

        self.state = state
        with gr.Tab("Models", elem_id="lc-models-tab"):
            with gr.Row():
                train_kind = gr.Dropdown(["probe", "finetune"], value="probe", label="Kind", scale=1,
                                         info="probe: seconds on a CPU · finetune: the image model too (GPU)")
                train_epochs = gr.Number(value=10, precision=0, minimum=1, label="Epochs (finetune)", scale=1)
                train_use = gr.Checkbox(value=True, label="Use it for suggestions when done", scale=1)
                train_go = gr.Button("Train", variant="primary", scale=1, elem_id="lc-train")
                train_stop = gr.Button("Cancel training", scale=1, elem_id="lc-train-cancel")
            self.info = gr.Markdown(elem_id="lc-train-info")
            timer = gr.Timer(1.0, active=False)
            versions = gr.Dataframe(label="Model versions (● in use)", interactive=False, elem_id="lc-versions")
            with gr.Row():
                version_pick = gr.Dropdown([], label="Version", scale=2, elem_id="lc-version-pick")
                use_version = gr.Button("Use this version", scale=1, elem_id="lc-use-version")
                use_zero_shot = gr.Button("Back to zero-shot", scale=1)
            with gr.Row():
                with gr.Column(min_width=340):
                    curves = gr.LinePlot(x="step", y="value", color="series", title="Training curves", height=280,
                                         visible=False, elem_id="lc-curves")
                    curves_empty = gr.HTML(views.placeholder_html("curves"), elem_id="lc-curves-empty")
                confusion = gr.HTML(elem_id="lc-confusion")
        self.outputs = [versions, version_pick, curves, curves_empty, confusion]
        self.train = train_go.click(friendly(self.on_train), [train_kind, train_epochs, train_use], [self.info, timer],
                                    api_name="train")
        train_stop.click(lambda: "Cancelling after the current step…" if state.cancel_training()
                         else "No training run is going on.", None, self.info)
        self.tick = timer.tick(self.on_tick, version_pick, [self.info, timer, *self.outputs], show_progress="hidden")
        version_pick.input(self.view, version_pick, self.outputs)
        self.used = [use_version.click(friendly(self.on_use), version_pick, [self.info, *self.outputs]),
                     use_zero_shot.click(friendly(lambda name: self.on_use(name, zero_shot=True)), version_pick,
                                         [self.info, *self.outputs])]

    def view(self, name=None):
        import gradio as gr
        import pandas as pd

        state = self.state
        all_versions = state.project.store.model_versions()
        columns, rows = views.versions_table(all_versions)
        shown_version = next((v for v in all_versions if v.name == name), None) or \
            next((v for v in all_versions if v.active), None) or (all_versions[-1] if all_versions else None)
        history = shown_version.metrics.get("history", []) if shown_version else []
        if state.training_running or (state.train_events and not history):
            history = [{"epoch": e.epoch, "train_loss": e.train_loss, "val_accuracy": e.val_accuracy}
                       for e in state.train_events if e.phase == "epoch" and e.epoch and e.train_loss is not None]
        c_columns, c_rows = views.training_curve_table(history)
        return (pd.DataFrame(rows, columns=columns),
                gr.update(choices=[v.name for v in all_versions], value=shown_version.name if shown_version else None),
                gr.LinePlot(_frame(c_columns, c_rows, numeric=["step", "value"]), x_title=views.curve_axis(history),
                            visible=bool(c_rows)),
                gr.update(value=views.curves_placeholder_html(shown_version.metrics if shown_version else None),
                          visible=not c_rows),
                views.confusion_html(shown_version.metrics.get("holdout") if shown_version else None))

    def on_train(self, kind, epochs, use):
        import gradio as gr

        self.state.start_training(kind, epochs, use)
        return views.training_status([], True, None, None), gr.Timer(active=True)

    def on_tick(self, name):
        import gradio as gr

        state = self.state
        running = state.training_running
        text = views.training_status(state.train_events, running, state.train_error, state.train_version,
                                     state.train_note)
        return (text, gr.Timer(active=running), *self.view(None if running else state.train_version or name))

    def on_use(self, name, zero_shot=False):
        state = self.state
        if not name and not zero_shot:
            raise shown("Choose a version first (train one if the list is empty).")
        version = None if zero_shot else next(v for v in state.project.store.model_versions() if v.name == name)
        with state.lock:  # not in the middle of a chat turn
            done = state.workbench.use_version(version.id if version else None)
        return (f"Suggestions now come from **{version.name if version else 'zero-shot'}**: re-scored "
                f"{counted(done.rescored, 'item')}.", *self.view(name))
