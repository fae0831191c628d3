"""The Labels tab: browse the confirmed items of a label as a gallery, with the label's counts,
and correct or reject one (it leaves the gallery; U in the Review panel or 'undo' in the chat
takes it back)."""

from index.types import Action, Status
from tools.wording import counted

from . import views
from .errors import friendly, shown
from .people import request_user, with_request

SHOWN = 200  # thumbnails of a label at most, newest first


class LabelsTab:
    def __init__(self, state):
        import gradio as gr

        self.state = state
        with gr.Tab("Labels", elem_id="lc-labels-tab") as self.tab:
            with gr.Row():
                self.pick = gr.Dropdown([], label="Label", scale=2, elem_id="lc-browse-label")
                self.counts = gr.Markdown(elem_id="lc-browse-counts")
            self.gallery = gr.Gallery(label="Confirmed items", columns=8, height=420, allow_preview=False,
                                      elem_id="lc-browse-gallery", show_label=False)
            with gr.Row():
                self.chosen_info = gr.Markdown("Click an image to correct or reject it.", elem_id="lc-browse-chosen")
                self.other = gr.Dropdown([], label="Its right label", scale=1, elem_id="lc-browse-other",
                                         interactive=False)
                self.correct = gr.Button("Give it this label", scale=1, elem_id="lc-browse-correct", interactive=False)
                self.reject = gr.Button("Reject its label", scale=1, variant="stop", elem_id="lc-browse-reject",
                                        interactive=False)
        self.shown_ids = gr.State([])
        self.chosen = gr.State(None)
        self.outputs = [self.pick, self.counts, self.gallery, self.shown_ids, self.chosen, self.chosen_info,
                        self.other, self.correct, self.reject]
        self.tab.select(friendly(self.show), self.pick, self.outputs)
        self.pick.input(friendly(self.show), self.pick, self.outputs)
        def on_select(ids, evt: gr.SelectData):  # Gradio fills `evt` by this annotation
            return self.on_select(ids, evt.index)

        self.gallery.select(on_select, self.shown_ids, [self.chosen, self.chosen_info, self.other, self.correct,
                                                             self.reject])
        self.decided = [
            self.correct.click(friendly(with_request(self.on_correct)), [self.chosen, self.other, self.pick], self.outputs),
            self.reject.click(friendly(with_request(self.on_reject)), [self.chosen, self.pick], self.outputs),
        ]

    def show(self, label, notice=""):
        """The label's confirmed items; with no label chosen, the first label that has some."""
        import gradio as gr

        store = self.state.project.store
        counts = store.status()
        choices = views.label_choices(counts)
        names = [c.label for c in counts.by_label]
        if label not in names:
            label = next((c.label for c in counts.by_label if c.confirmed), names[0] if names else None)
        ids = sorted(store.item_ids_where(status=Status.CONFIRMED, label=label), reverse=True) if label else []
        line = next((c for c in counts.by_label if c.label == label), None)
        text = (f"**{counted(line.confirmed, 'confirmed item')}** · {line.suggested} more suggested"
                + (f" · showing the newest {SHOWN}" if len(ids) > SHOWN else "")) if line else "No labels yet."
        if notice:
            text = f"{notice}  \n{text}"
        ids = ids[:SHOWN]
        path = lambda i: str(self.state.project.media.path(store.get_item(i).media_path))  # noqa: E731
        return (gr.update(choices=choices, value=label), text, views.label_gallery(ids, path), ids, None,
                "Click an image to correct or reject it." if ids else "Nothing confirmed as this label yet.",
                gr.update(choices=[n for n in names if n != label], value=None, interactive=False),
                gr.update(interactive=False), gr.update(interactive=False))

    def on_select(self, ids, index):
        import gradio as gr

        if index is None or not 0 <= index < len(ids):
            return None, "Click an image to correct or reject it.", gr.update(), gr.update(), gr.update()
        item_id = ids[index]
        return (item_id, f"**#{item_id}** chosen: give it another label, or reject its label.",
                gr.update(interactive=True), gr.update(interactive=True), gr.update(interactive=True))

    def on_correct(self, item_id, other, label, login):
        if item_id is None:
            raise shown("Click an image first.")
        if not other:
            raise shown(f"Choose the right label for #{item_id} first.")
        self.state.workbench.decide(int(item_id), Action.CORRECT, other, actor=request_user(login))
        return self.show(label, f"#{item_id} is now **{other}**.")

    def on_reject(self, item_id, label, login):
        if item_id is None:
            raise shown("Click an image first.")
        self.state.workbench.decide(int(item_id), Action.REJECT, label, actor=request_user(login))
        return self.show(label, f"Rejected **{label}** for #{item_id}: it is no longer confirmed (undo takes it back).")
