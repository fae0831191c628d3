"""The browser app: chat, a keyboard-first review panel, and a dashboard, on one project.

Each callback calls one function of the agent or the review loop and renders
its typed result with ui/views.py. Every decision is written to the store
before the panel changes; the store serialises writes from several tabs.
Binds 127.0.0.1 unless told otherwise, never shares publicly, sends nothing
to other hosts (analytics and run history off, system fonts).
"""

from __future__ import annotations

import gc
import html
import json
import os
import threading
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# Gradio 6's run history re-serialises every call's inputs and outputs (the review panel's
# HTML included) into the browser's localStorage on each event: decisions got slower by
# about 1 ms with every one made (measured), it keeps images' labels in the browser, and it
# offers to upload to a Hugging Face bucket. Off, unless someone turns it on.
os.environ.setdefault("GRADIO_RUN_HISTORY", "False")

from agent.session import Session  # noqa: E402
from agent.tools import undo_text, worse_than_zero_shot  # noqa: E402
from index.errors import LabelchatError  # noqa: E402
from index.project import Project  # noqa: E402
from index.types import Action, Status  # noqa: E402

from . import quality_views, rounds_tab, views  # noqa: E402
from .next_batch import NextBatch, Prepared  # noqa: E402
from .people import credentials, request_user, with_request  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
BATCH = 12
PREPARE_AT = 2  # cards left when the next batch is prepared (ui/next_batch.py): time to finish first
CONFIRMED, SUGGESTED = "confirmed", "confirmed + suggestions"
EXPORT_INCLUDE = {CONFIRMED: "confirmed", SUGGESTED: "suggested"}


class AppState:
    """One project, one agent session and its review loop, shared by every tab of this server."""

    def __init__(self, project_dir: Path, *, brain: str, yes: bool, model: str | None, brain_options: dict):
        self.project = Project(project_dir)
        self.session = Session(self.project, brain=brain, yes=yes, session_id="web", model=model, audience="web",
                               **brain_options)
        self.session.ctx.write_behind = True  # a key press never waits for thousands of suggestion rows
        self.lock = threading.RLock()  # one agent turn at a time
        self.cards: dict[int, object] = {}  # the shown batch's cards, so a decision re-renders without queries
        self.review_lock = threading.Lock()  # one refresh-and-choose of the review loop at a time
        self.next_batch = NextBatch(self.project.store)
        self._settled = None  # the review loop the heap was last frozen with
        self._urls: dict[int, str] = {}
        self.training: threading.Thread | None = None  # the background training run, if any
        self.train_events: list = []  # its TrainProgress events, read by the Models tab's timer
        self.train_error: str | None = None
        self.train_version: str | None = None
        self.train_note = ""  # a warning about the new version, for the Models tab
        self._train_cancel: threading.Event | None = None

    def reviewer(self):
        """The review loop. A new one (the first, or after a model change) freezes the heap:
        everything alive then (Gradio, torch, the models, the project's arrays, about 460,000
        objects) leaves the garbage collector's sight. Its full passes over them took 200 ms
        and landed on a key press every few batches (measured); newer objects are collected
        as usual."""
        reviewer = self.ctx.reviewer()
        if reviewer is not self._settled:
            if self._settled is not None:  # the old review loop may sit in frozen cycles: free it once
                gc.unfreeze()
                gc.collect()
            gc.freeze()
            self._settled = reviewer
        return reviewer

    def can_search_text(self) -> bool:
        """Whether the model compares text with images (CLIP does; the offline model does not)."""
        return callable(getattr(self.reviewer().backend, "encode_texts", None))

    def cards_for(self, ids: list[int]) -> list:
        reviewer = self.reviewer()
        return [self.cards.get(i) or reviewer.card(i) for i in ids]

    @property
    def ctx(self):
        return self.session.ctx

    def turn(self, text: str, actor: str = "web"):
        """One chat turn's steps, computed in a worker thread that holds the turn lock; its
        decisions are logged as `actor` (the logged-in user).

        Gradio may resume a generator on different threads, so no lock is held
        across a yield here. Closing the generator (Stop, a closed tab) asks the
        running tool to stop.
        """
        import queue

        steps: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def work() -> None:
            with self.lock:
                self.ctx.should_stop = cancelled.is_set
                self.ctx.actor = actor
                try:
                    for step in self.session.send(text):
                        steps.put(step)
                finally:
                    steps.put(None)

        threading.Thread(target=work, daemon=True).start()
        try:
            while (step := steps.get()) is not None:
                yield step
        finally:
            cancelled.set()

    # -- training in the background ---------------------------------------------------------

    def start_training(self, kind: str, epochs: int, use_when_done: bool) -> None:
        """Train in a background thread; progress lands in `train_events`, read by a timer."""
        from tools.training import TrainConfig, activate, train

        if self.training is not None and self.training.is_alive():
            raise LabelchatError("A training run is already going on; wait for it or cancel it.")
        config = TrainConfig(kind=kind, epochs=int(epochs), model=self.ctx.model)  # checks the values now
        self.train_events, self.train_error, self.train_version, self.train_note = [], None, None, ""
        self._train_cancel = threading.Event()

        def work() -> None:
            try:
                report = train(self.project, config, on_progress=self.train_events.append,
                               should_stop=self._train_cancel.is_set)
                self.train_version = report.version.name
                if use_when_done:
                    with self.lock:
                        self.ctx.forget_reviewer()
                        activate(self.project, report.version.id)
                    self.train_note = worse_than_zero_shot(report.version.metrics).strip()
            except LabelchatError as exc:
                self.train_error = str(exc)
            except Exception as exc:  # shown in the tab; the job records it too
                self.train_error = f"{type(exc).__name__}: {exc}"

        self.training = threading.Thread(target=work, daemon=True, name="labelchat-train")
        self.training.start()

    def cancel_training(self) -> bool:
        """Ask the running training to stop; False when none is running."""
        if not self.training_running:
            return False
        self._train_cancel.set()
        return True

    @property
    def training_running(self) -> bool:
        return self.training is not None and self.training.is_alive()

    def image_url(self, item_id: int) -> str:
        """Where the browser fetches an item's image (an item's file never changes: cached)."""
        if item_id not in self._urls:
            path = self.project.media.path(self.project.store.get_item(item_id).media_path).resolve()
            self._urls[item_id] = f"/gradio_api/file={path}"
        return self._urls[item_id]


def build_app(state: AppState):
    import gradio as gr

    with gr.Blocks(title="labelchat") as app:
        gr.Markdown(f"## labelchat · {state.project.name}")
        with gr.Tab("Chat"):
            chat = gr.Chatbot(value=[], height=520, label="Conversation", elem_id="lc-chat")
            with gr.Row():
                message = gr.Textbox(placeholder="e.g. label them · show me the 20 least certain · help",
                                     show_label=False, scale=8, elem_id="lc-message")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="lc-send")
                stop = gr.Button("Stop", scale=1)
            upload = gr.File(label="Add images (files or a zip)", file_count="multiple")
            open_ids = gr.Textbox(elem_id="lc-open-ids", elem_classes=["lc-hidden"], show_label=False)
            open_go = gr.Button("open", elem_id="lc-open", elem_classes=["lc-hidden"])
        with gr.Tab("Review", elem_id="lc-review-tab"):
            with gr.Row():
                strategy = gr.Dropdown(["uncertain", "balanced", "confident", "random", "suspect"], value="uncertain",
                                       label="Order", scale=1)
                label_filter = gr.Dropdown([""], value="", label="Suggested label", scale=1)
                prob_range = gr.Textbox(value="0-1", label="Probability range", scale=1, elem_id="lc-range")
                search = gr.Textbox(placeholder="search, e.g. red sneakers", label="Find (CLIP models)", scale=2,
                                    elem_id="lc-search")
                next_batch = gr.Button("Next batch", elem_id="lc-next")
            with gr.Row():
                bulk_label = gr.Dropdown([""], value="", label="Approve all of label", scale=1, elem_id="lc-bulk-label")
                bulk_prob = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label="with probability at least", scale=2,
                                      elem_id="lc-bulk-prob")
                bulk_preview = gr.Button("Preview", elem_id="lc-bulk-preview")
                bulk_go = gr.Button("Approve them", variant="primary", elem_id="lc-bulk-go")
            bulk_info = gr.Markdown(elem_id="lc-bulk-info")
            bulk_previewed = gr.State(None)  # (label, threshold) of the preview shown
            cards_html = gr.HTML(elem_id="lc-review")
            batch_state = gr.State([])
            action = gr.Textbox(elem_id="lc-action", elem_classes=["lc-hidden"], show_label=False)
            act = gr.Button("act", elem_id="lc-act", elem_classes=["lc-hidden"])
            ack = gr.HTML(elem_id="lc-ack", elem_classes=["lc-hidden"])  # which decision was saved last
        with gr.Tab("Models", elem_id="lc-models-tab"):
            with gr.Row():
                train_kind = gr.Dropdown(["probe", "finetune"], value="probe", label="Kind", scale=1,
                                         info="probe: seconds on a CPU · finetune: the image model too (GPU)")
                train_epochs = gr.Number(value=10, precision=0, minimum=1, label="Epochs (finetune)", scale=1)
                train_use = gr.Checkbox(value=True, label="Use it for suggestions when done", scale=1)
                train_go = gr.Button("Train", variant="primary", scale=1, elem_id="lc-train")
                train_stop = gr.Button("Cancel training", scale=1, elem_id="lc-train-cancel")
            train_info = gr.Markdown(elem_id="lc-train-info")
            timer = gr.Timer(1.0, active=False)
            versions = gr.Dataframe(label="Model versions (● in use)", interactive=False, elem_id="lc-versions")
            with gr.Row():
                version_pick = gr.Dropdown([], label="Version", scale=2, elem_id="lc-version-pick")
                use_version = gr.Button("Use this version", scale=1, elem_id="lc-use-version")
                use_zero_shot = gr.Button("Back to zero-shot", scale=1)
            with gr.Row():
                curves = gr.LinePlot(x="epoch", y="value", color="series", title="Training curves", height=280,
                                     min_width=340)
                confusion = gr.HTML(elem_id="lc-confusion")
        with gr.Tab("Dashboard") as dashboard_tab:
            refresh = gr.Button("Refresh")
            summary = gr.Markdown()
            with gr.Row():
                # min_width: side by side on a wide window, one above the other on a phone
                per_label = gr.BarPlot(x="label", y="items", color="kind", title="Items per label", height=300,
                                       min_width=340)
                histogram = gr.BarPlot(x="probability", y="items", title="Best-suggestion probability", height=300,
                                       min_width=340)
            progress_plot = gr.LinePlot(x="time", y="confirmed decisions", title="Labelling progress", height=260)
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
        with gr.Tab("Rounds", elem_id="lc-rounds-tab"):  # review rounds and the quality report (ui/rounds_tab.py)
            rounds_tab.build(app, state)

        @with_request
        def respond(text, history, login):
            history = list(history or []) + [{"role": "user", "content": text}]
            yield history, ""
            for step in state.turn(text, request_user(login)):
                history = views.step_to_messages(step, history, state.image_url)
                yield history, ""

        def welcome(history):
            return history or [{"role": "assistant", "content": state.session.welcome()}]

        def on_open(raw):
            """A set shown in the chat, as cards in the Review panel (those still there)."""
            ids = [int(i) for i in (raw or "").split(",") if i.strip().isdigit()]
            try:
                cards = state.cards_for(ids)
            except LabelchatError as exc:
                raise gr.Error(str(exc)) from exc
            return show(cards, f"The {len(cards)} images shown in the chat")

        @with_request
        def on_upload(files, history, login):
            if not files:
                return history
            paths = [getattr(f, "name", f) for f in files]
            return list(respond("add " + " ".join(str(p) for p in paths), history, login))[-1][0]

        def show_batch(order, label, span="0-1", notice="", *, learn=False, first=None):
            """Choose and render a batch; with `learn`, refresh the suggestions from the decisions first;
            `first`: an item whose card leads the batch (the one just undone)."""
            state.next_batch.drop()
            try:
                cards = choose_batch(order, label, span, learn=learn)
            except LabelchatError as exc:
                raise gr.Error(str(exc)) from exc
            if first is not None:
                lead = next((c for c in cards if c.item.id == first), None) or state.reviewer().card(first)
                cards = [lead] + [c for c in cards if c.item.id != first][: BATCH - 1]
            return show(cards, notice, filtered=views.filter_text(label, *views.parse_range(span)))

        def choose_batch(order, label, span, *, learn, left_out=frozenset()):
            low, high = views.parse_range(span)
            with state.review_lock:
                reviewer = state.reviewer()
                if learn:
                    reviewer.refresh()
                return reviewer.batch(order, BATCH, label=label or None, min_prob=low, max_prob=high, exclude=left_out)

        def prepare_next(order, label, span, left_out) -> Prepared:
            cards = choose_batch(order, label, span, learn=True, left_out=left_out)
            filtered = views.filter_text(label, *views.parse_range(span))
            return Prepared(views.render_cards(cards, state.project.store.label_set().names, state.image_url,
                                               filtered=filtered), cards)

        def show(cards, notice="", html_text=None, filtered=""):
            state.cards = {c.item.id: c for c in cards}
            if html_text is None:
                labels = state.project.store.label_set().names
                html_text = views.render_cards(cards, labels, state.image_url, notice=notice, filtered=filtered)
            return html_text, [c.item.id for c in cards]

        def next_key(order, label, span):
            """What a prepared next batch must have been prepared for."""
            return order, label, span, tuple(state.project.store.label_set().names), id(state.reviewer())

        def on_search(text, order, label, span):
            if not text.strip():
                return show_batch(order, label, span)
            try:
                cards = state.reviewer().search_cards(text)
            except LabelchatError as exc:
                raise gr.Error(str(exc)) from exc
            return show(cards, f"Matches for {text!r}")

        @with_request
        def on_action(raw, ids, order, label, span, login):
            """One decision. The browser hides the card at once (app.js) and waits for the ack;
            the panel is sent again only at a batch's end, after an undo or when something went
            wrong: Gradio's front end slowed down with every large HTML update (measured)."""
            try:
                request = json.loads(raw or "{}")
            except json.JSONDecodeError:
                return gr.update(), ids, ""
            reviewer = state.reviewer()
            item_id, kind = request.get("item"), request.get("action")
            ack = f'<span data-decided="{html.escape(str(item_id))}" data-t="{html.escape(str(request.get("t")))}"></span>'
            if kind == "undo":
                undone = state.project.store.undo_last(actor=request_user(login))
                again = len(undone) == 1 and state.project.store.state(undone[0].item_id).status is Status.PENDING
                return (*show_batch(order, label, span, undo_text(state.project.store, undone), learn=True,
                                    first=undone[0].item_id if again else None), ack)  # the card undone comes first
            if item_id not in ids:
                notice = f"#{item_id} was already decided (maybe in another tab); nothing was counted twice."
                return (*render(ids, notice), ack)
            try:
                reviewer.decide(int(item_id), Action(kind), request.get("label") or None, actor=request_user(login))
            except LabelchatError as exc:  # the hidden card comes back, with the reason
                return (*render(ids, str(exc)), ack)
            ids = [i for i in ids if i != item_id]
            if len(ids) == PREPARE_AT:  # near the end: learn from the others, prepare the next batch meanwhile
                state.next_batch.prepare(next_key(order, label, span), set(ids),
                                         lambda left_out: prepare_next(order, label, span, left_out))
            if not ids:  # the batch is done: show the next one, learnt from it
                prepared = state.next_batch.take(next_key(order, label, span))
                if prepared is not None:
                    return (*show(prepared.cards, html_text=prepared.html), ack)
                return (*show_batch(order, label, span, learn=True), ack)
            return gr.update(), ids, ack

        def render(ids, notice):
            labels = state.project.store.label_set().names
            return views.render_cards(state.cards_for(ids), labels, state.image_url, notice=notice), ids

        def candidates(label, prob):
            if not label:
                raise gr.Error("Choose the label to approve.")
            return state.reviewer().candidates(float(prob), label)

        def on_preview(label, prob):
            """The count a person sees before approving; 'Approve them' acts only on what was previewed."""
            found = candidates(label, prob)
            text = f"**{len(found)}** pending items suggested as **{label}** with probability ≥ {prob:.2f}."
            if found:
                text += " Press **Approve them** to approve them (U in the panel, or 'undo' in the chat, takes them back)."
            return text, (label, float(prob))

        @with_request
        def on_bulk(previewed, label, prob, order, filter_label, span, login):
            if previewed != (label, float(prob)):
                raise gr.Error("Press Preview first, to see how many items this approves.")
            count = len(candidates(label, prob))
            report = state.reviewer().accept_above(float(prob), label, actor=request_user(login))
            html, ids = show_batch(order, filter_label, span, learn=True)
            return f"Approved **{report.accepted}** of {count} items as **{label}**.", None, html, ids

        def label_choices():
            names = [""] + state.project.store.label_set().names
            return gr.update(choices=names), gr.update(choices=names)

        def dashboard():
            store = state.project.store
            counts = store.status()
            columns, rows = views.label_counts_table(counts)
            top = [s.score for s in store.top_suggestions().values()]
            h_columns, h_rows = views.probability_histogram(top)
            p_columns, p_rows = views.progress_table(store.decisions())
            text = (f"**{counts.items}** images · " +
                    " · ".join(f"{n} {k}" for k, n in counts.by_status.items()) +
                    f" · {counts.decisions} decisions")
            stacked = [c.confirmed + c.suggested for c in counts.by_label]
            return (text,
                    gr.BarPlot(_frame(columns, rows, numeric=["items"]), y_lim=_headroom(stacked)),
                    gr.BarPlot(_frame(h_columns, h_rows, numeric=["items"]), y_lim=_headroom([r[1] for r in h_rows])),
                    gr.LinePlot(_frame(p_columns, p_rows, numeric=["confirmed decisions"], temporal=["time"]),
                                y_lim=_headroom([r[1] for r in p_rows])))

        def on_health():
            from tools.quality.health import dataset_health

            return quality_views.health_html(dataset_health(state.reviewer()), state.image_url)

        def on_export(folder, fmt, include, overwrite):
            """Exports, or says why not; a failed export never leaves an earlier success on show."""
            from tools.export import export_dataset

            if not (folder or "").strip():
                return "**Not exported:** give a folder to export into."
            target = Path(folder.strip()).expanduser()
            target = target if target.is_absolute() else (Path.cwd() / target)
            try:
                report = export_dataset(state.project, target, fmt, include=EXPORT_INCLUDE[include],
                                        overwrite=overwrite)
            except LabelchatError as exc:  # its hints name the CLI's options: name the controls instead
                message = str(exc).replace("pass --overwrite", "tick 'Replace an earlier export'").replace(
                    "--overwrite", "'Replace an earlier export'").replace(
                    "use --include suggested", f"choose '{SUGGESTED}'")
                return f"**Not exported:** {message}"
            except OSError as exc:
                return f"**Not exported:** could not write to {target}: {exc.strerror or exc}. Choose a folder you can write to."
            return f"Exported **{report.count}** images as {report.format.value} to `{report.folder}`."

        def models_view(name=None):
            import pandas as pd

            all_versions = state.project.store.model_versions()
            columns, rows = views.versions_table(all_versions)
            shown = next((v for v in all_versions if v.name == name), None) or \
                next((v for v in all_versions if v.active), None) or (all_versions[-1] if all_versions else None)
            history = shown.metrics.get("history", []) if shown else []
            if state.training_running or (state.train_events and not history):
                history = [{"epoch": e.epoch, "train_loss": e.train_loss, "val_accuracy": e.val_accuracy}
                           for e in state.train_events if e.phase == "epoch" and e.epoch and e.train_loss is not None]
            c_columns, c_rows = views.training_curve_table(history)
            return (pd.DataFrame(rows, columns=columns),
                    gr.update(choices=[v.name for v in all_versions], value=shown.name if shown else None),
                    _frame(c_columns, c_rows, numeric=["epoch", "value"]),
                    views.confusion_html(shown.metrics.get("holdout") if shown else None))

        models_outputs = [versions, version_pick, curves, confusion]

        def on_train(kind, epochs, use):
            try:
                state.start_training(kind, epochs, use)
            except LabelchatError as exc:
                raise gr.Error(str(exc)) from exc
            return views.training_status([], True, None, None), gr.Timer(active=True)

        def on_tick(name):
            running = state.training_running
            text = views.training_status(state.train_events, running, state.train_error, state.train_version,
                                         state.train_note)
            return (text, gr.Timer(active=running), *models_view(None if running else state.train_version or name))

        def on_use(name, zero_shot=False):
            from tools.training import activate

            if not name and not zero_shot:
                raise gr.Error("Choose a version first (train one if the list is empty).")
            version = None if zero_shot else next(v for v in state.project.store.model_versions() if v.name == name)
            try:
                with state.lock:
                    state.ctx.forget_reviewer()
                    done = activate(state.project, version.id if version else None)
            except LabelchatError as exc:
                raise gr.Error(str(exc)) from exc
            return f"Suggestions now come from **{version.name if version else 'zero-shot'}**: re-scored " \
                f"{done.rescored} items.", *models_view(name)

        turn = send.click(respond, [message, chat], [chat, message], api_name="chat")
        submitted = message.submit(respond, [message, chat], [chat, message], api_visibility="private")
        stop.click(None, cancels=[turn, submitted])
        upload.upload(on_upload, [upload, chat], chat)
        open_go.click(on_open, open_ids, [cards_html, batch_state])
        app.load(welcome, chat, chat)
        filters = [strategy, label_filter, prob_range]
        next_batch.click(show_batch, filters, [cards_html, batch_state], api_name="batch")
        strategy.change(show_batch, filters, [cards_html, batch_state])
        label_filter.change(show_batch, filters, [cards_html, batch_state])
        prob_range.submit(show_batch, filters, [cards_html, batch_state])
        search.submit(on_search, [search, *filters], [cards_html, batch_state])
        # Decisions skip the queue (a direct request) and show no progress overlay: the
        # card must go at once. trigger_mode "multiple": fast key presses are not dropped.
        act.click(on_action, [action, batch_state, *filters], [cards_html, batch_state, ack], queue=False,
                  show_progress="hidden", trigger_mode="multiple")
        bulk_preview.click(on_preview, [bulk_label, bulk_prob], [bulk_info, bulk_previewed])
        bulk_go.click(on_bulk, [bulk_previewed, bulk_label, bulk_prob, *filters],
                      [bulk_info, bulk_previewed, cards_html, batch_state])
        for bulk_input in (bulk_label, bulk_prob):  # a preview counts for the label and threshold it was made for
            bulk_input.change(lambda: ("", None), None, [bulk_info, bulk_previewed], show_progress="hidden")
        refresh.click(dashboard, None, [summary, per_label, histogram, progress_plot], api_name="dashboard")
        dashboard_tab.select(dashboard, None, [summary, per_label, histogram, progress_plot])  # current when opened
        health_go.click(on_health, None, health_info, api_name="health")
        export_go.click(on_export, [export_dir, export_format, export_include, export_overwrite], export_info)
        train_go.click(on_train, [train_kind, train_epochs, train_use], [train_info, timer], api_name="train")
        train_stop.click(lambda: "Cancelling after the current step…" if state.cancel_training()
                         else "No training run is going on.", None, train_info)
        timer.tick(on_tick, version_pick, [train_info, timer, *models_outputs], show_progress="hidden")
        version_pick.input(models_view, version_pick, models_outputs)
        use_version.click(on_use, version_pick, [train_info, *models_outputs])
        use_zero_shot.click(lambda name: on_use(name, zero_shot=True), version_pick, [train_info, *models_outputs])
        app.load(models_view, None, models_outputs)
        app.load(label_choices, None, [label_filter, bulk_label])
        app.load(lambda: gr.update(visible=state.can_search_text()), None, search)  # CLIP models only
        app.load(show_batch, filters, [cards_html, batch_state])
        app.load(dashboard, None, [summary, per_label, histogram, progress_plot])
    return app


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


def launch(project_dir: Path, *, host: str = "127.0.0.1", port: int | None = None,
           auth: list[str] | str | None = None, auth_file: str | None = None, brain: str = "router", yes: bool = False,
           model: str | None = None, brain_options: dict | None = None, share: bool = False, block: bool = True):
    """Start the app; returns (app, local_url)."""
    import gradio as gr

    users = credentials(auth, auth_file)  # before anything starts: a bad line is named, nothing runs
    state = AppState(Path(project_dir), brain=brain, yes=yes, model=model, brain_options=brain_options or {})
    state.people = list(users)  # who may review a round
    app = build_app(state)
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    app.queue(default_concurrency_limit=4)
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, auth=list(users.items()) or None, share=share, prevent_thread_lock=not block,
        allowed_paths=[str(state.project.media.root.resolve())], theme=theme,
        css=(ASSETS / "app.css").read_text(), head=f"<script>{(ASSETS / 'app.js').read_text()}</script>",
        show_error=True, quiet=not block, ssr_mode=False,
    )
    return app, local_url
