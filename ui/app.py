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
from agent.tools import worse_than_zero_shot  # noqa: E402
from index.errors import LabelchatError  # noqa: E402
from index.project import Project  # noqa: E402
from index.types import Action  # noqa: E402
from tools.wording import counted, plural  # noqa: E402
from tools.workbench import Workbench  # noqa: E402

from . import rounds_tab, views  # noqa: E402
from .dashboard import DashboardTab  # noqa: E402
from .errors import friendly, in_the_browser, log, shown  # noqa: E402
from .labels_tab import LabelsTab  # noqa: E402
from .models_tab import ModelsTab  # noqa: E402
from .next_batch import NextBatch, Prepared  # noqa: E402
from .people import credentials, request_user, with_request  # noqa: E402

ASSETS = Path(__file__).parent / "assets"
BATCH = 12
PREPARE_AT = 2  # cards left when the next batch is prepared (ui/next_batch.py): time to finish first


class AppState:
    """One project, its workbench (the review loop and every change) and one agent session on
    that same workbench, shared by every tab of this server."""

    def __init__(self, project_dir: Path, *, brain: str, yes: bool, model: str | None, brain_options: dict):
        self.project = Project(project_dir)
        # write_behind: a key press never waits for thousands of suggestion rows
        self.workbench = Workbench(self.project, model=model, write_behind=True)
        self.session = Session(self.project, brain=brain, yes=yes, session_id="web", model=model, audience="web",
                               workbench=self.workbench, **brain_options)
        self.lock = threading.RLock()  # one agent turn at a time
        self.cards: dict[int, object] = {}  # the shown batch's cards, so a decision re-renders without queries
        self.review_lock = threading.Lock()  # one refresh-and-choose of the review loop at a time
        self._building = threading.RLock()  # one review loop built at a time
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
        with self._building:  # the page's load events ask at once: build it once, not once each
            return self._reviewer()

    def _reviewer(self):
        reviewer = self.workbench.reviewer()
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
        from tools.training import TrainConfig

        if self.training is not None and self.training.is_alive():
            raise LabelchatError("A training run is already going on; wait for it or cancel it.")
        config = TrainConfig(kind=kind, epochs=int(epochs), model=self.workbench.model)  # checks the values now
        self.train_events, self.train_error, self.train_version, self.train_note = [], None, None, ""
        self._train_cancel = threading.Event()

        def work() -> None:
            try:
                report, _ = self.workbench.train(config, on_progress=self.train_events.append,
                                                 should_stop=self._train_cancel.is_set)
                self.train_version = report.version.name
                if use_when_done:
                    with self.lock:  # not in the middle of a chat turn
                        self.workbench.use_version(report.version.id)
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

    with gr.Blocks(title=f"labelchat · {state.project.name}") as app:
        header = gr.HTML(header_html(state), elem_id="lc-header")
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
                # live only once a preview counted what it approves
                bulk_go = gr.Button("Approve them", variant="primary", elem_id="lc-bulk-go", interactive=False)
            bulk_info = gr.Markdown(elem_id="lc-bulk-info")
            bulk_previewed = gr.State(None)  # (label, threshold) of the preview shown
            cards_html = gr.HTML(elem_id="lc-review")
            batch_state = gr.State([])
            action = gr.Textbox(elem_id="lc-action", elem_classes=["lc-hidden"], show_label=False)
            act = gr.Button("act", elem_id="lc-act", elem_classes=["lc-hidden"])
            ack = gr.HTML(elem_id="lc-ack", elem_classes=["lc-hidden"])  # which decision was saved last
        models = ModelsTab(state)
        labels = LabelsTab(state)
        dashboard = DashboardTab(state)
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
            cards = state.cards_for(ids)
            return show(cards, f"The {counted(len(cards), 'image')} shown in the chat")

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
            cards = choose_batch(order, label, span, learn=learn)
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
            return show(state.reviewer().search_cards(text), f"Matches for {text!r}")

        @with_request
        def on_action(raw, ids, order, label, span, login):
            """One decision. The browser hides the card at once (app.js) and waits for the ack;
            the panel is sent again only at a batch's end, after an undo or when something went
            wrong: Gradio's front end slowed down with every large HTML update (measured)."""
            try:
                request = json.loads(raw or "{}")
            except json.JSONDecodeError:
                return gr.update(), ids, ""
            state.reviewer()  # opened (or reopened after a change) here, where the heap is frozen once
            item_id, kind = request.get("item"), request.get("action")
            ack = f'<span data-decided="{html.escape(str(item_id))}" data-t="{html.escape(str(request.get("t")))}"></span>'
            if kind == "undo":
                try:
                    undone = state.workbench.undo(actor=request_user(login))
                except LabelchatError as exc:  # nothing to undo: said in the panel, and acknowledged
                    return (*render(ids, in_the_browser(exc)), ack)
                first = undone.undone[0].item_id if undone.back_to_pending else None  # the card undone comes first
                return (*show_batch(order, label, span, undone.text, learn=True, first=first), ack)
            if item_id not in ids:
                notice = f"#{item_id} was already decided (maybe in another tab); nothing was counted twice."
                return (*render(ids, notice), ack)
            try:
                state.workbench.decide(int(item_id), Action(kind), request.get("label"), actor=request_user(login))
            except LabelchatError as exc:  # the hidden card comes back, with the reason
                log.info("decision refused: %s", exc)
                return (*render(ids, in_the_browser(exc)), ack)
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
                raise shown("Choose the label to approve.")
            return state.reviewer().candidates(float(prob), label)

        def on_preview(label, prob):
            """The count a person sees before approving; 'Approve them' acts only on what was previewed."""
            found = candidates(label, prob)
            text = f"**{len(found)}** pending {plural(len(found), 'item')} suggested as **{label}** with probability ≥ {prob:.2f}."
            if found:
                text += " Press **Approve them** to approve them (U in the panel, or 'undo' in the chat, takes them back)."
            return text, (label, float(prob)), gr.update(interactive=bool(found))

        @with_request
        def on_bulk(previewed, label, prob, order, filter_label, span, login):
            if previewed != (label, float(prob)):
                raise shown("Press Preview first, to see how many items this approves.")
            count = len(candidates(label, prob))
            report = state.workbench.accept_above(float(prob), label, actor=request_user(login))
            html_text, ids = show_batch(order, filter_label, span, learn=True)
            return (f"Approved **{report.accepted}** of {counted(count, 'item')} as **{label}**.", None,
                    gr.update(interactive=False), html_text, ids)

        def label_choices():
            names = [""] + state.project.store.label_set().names
            return gr.update(choices=names), gr.update(choices=names)

        turn = send.click(friendly(respond), [message, chat], [chat, message], api_name="chat")
        submitted = message.submit(friendly(respond), [message, chat], [chat, message], api_visibility="private")
        stop.click(None, cancels=[turn, submitted])
        uploaded = upload.upload(friendly(on_upload), [upload, chat], chat)
        open_go.click(friendly(on_open), open_ids, [cards_html, batch_state])
        app.load(welcome, chat, chat)
        filters = [strategy, label_filter, prob_range]
        show_batch_shown = friendly(show_batch)
        next_batch.click(show_batch_shown, filters, [cards_html, batch_state], api_name="batch")
        strategy.change(show_batch_shown, filters, [cards_html, batch_state])
        label_filter.change(show_batch_shown, filters, [cards_html, batch_state])
        prob_range.submit(show_batch_shown, filters, [cards_html, batch_state])
        search.submit(friendly(on_search), [search, *filters], [cards_html, batch_state])
        # Decisions skip the queue (a direct request) and show no progress overlay: the
        # card must go at once. trigger_mode "multiple": fast key presses are not dropped.
        act.click(friendly(on_action), [action, batch_state, *filters], [cards_html, batch_state, ack], queue=False,
                  show_progress="hidden", trigger_mode="multiple")
        # One queue for the bulk controls, in the order pressed: a preview's clearing (a changed
        # label or threshold) could otherwise land after the preview that followed it.
        bulk_queue = dict(concurrency_id="bulk", concurrency_limit=1)
        bulk_preview.click(friendly(on_preview), [bulk_label, bulk_prob], [bulk_info, bulk_previewed, bulk_go],
                           **bulk_queue)
        bulked = bulk_go.click(friendly(on_bulk), [bulk_previewed, bulk_label, bulk_prob, *filters],
                               [bulk_info, bulk_previewed, bulk_go, cards_html, batch_state], **bulk_queue)
        for bulk_input in (bulk_label, bulk_prob):  # a preview counts for the label and threshold it was made for
            bulk_input.change(lambda: ("", None, gr.update(interactive=False)), None,
                              [bulk_info, bulk_previewed, bulk_go], show_progress="hidden", **bulk_queue)
        # The header's counts after anything that decides, adds or trains. After a decision it
        # follows the acknowledgement (never delays it); fast key presses update it once.
        counts = lambda: header_html(state)  # noqa: E731
        ack.change(counts, None, header, show_progress="hidden", trigger_mode="always_last")
        for event in (turn, submitted, uploaded, bulked, models.tick, *models.used, *labels.decided):
            event.then(counts, None, header, show_progress="hidden")
        dashboard.refresh.click(counts, None, header, show_progress="hidden")
        app.load(models.view, None, models.outputs)
        app.load(label_choices, None, [label_filter, bulk_label])
        app.load(lambda: gr.update(visible=state.can_search_text()), None, search)  # CLIP models only
        app.load(show_batch_shown, filters, [cards_html, batch_state])
        app.load(friendly(dashboard.values), None, dashboard.outputs)
        app.load(counts, None, header)
    return app


def header_html(state: AppState) -> str:
    return views.header_html(state.project.name, state.project.store.status())


def theme():
    """labelchat's own look: an ink-blue and amber palette, system fonts (nothing fetched from a
    font CDN: the app must work, and send nothing, without internet)."""
    import gradio as gr

    ink = gr.themes.Color(c50="#eef4fb", c100="#d8e5f5", c200="#b3cbea", c300="#84a9da", c400="#5584c6",
                          c500="#3566ae", c600="#274f91", c700="#1f3f75", c800="#1b335d", c900="#172a4b",
                          c950="#0e1a30", name="labelchat-ink")
    amber = gr.themes.Color(c50="#fff8eb", c100="#feecc7", c200="#fdd78a", c300="#fcbf4d", c400="#fba924",
                            c500="#f08a0b", c600="#d46706", c700="#b04709", c800="#8f370e", c900="#752e0f",
                            c950="#431603", name="labelchat-amber")
    return gr.themes.Base(
        primary_hue=ink, secondary_hue=amber, neutral_hue=gr.themes.colors.slate, radius_size=gr.themes.sizes.radius_md,
        font=["Inter", "system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    ).set(
        body_background_fill="#f6f8fb", block_border_width="1px", block_shadow="0 1px 2px rgba(15, 23, 42, 0.06)",
        button_primary_background_fill="*primary_600", button_primary_background_fill_hover="*primary_700",
        button_primary_text_color="white", button_large_radius="*radius_md",
    )


def launch(project_dir: Path, *, host: str = "127.0.0.1", port: int | None = None,
           auth: list[str] | str | None = None, auth_file: str | None = None, brain: str = "router", yes: bool = False,
           model: str | None = None, brain_options: dict | None = None, share: bool = False, block: bool = True):
    """Start the app; returns (app, local_url)."""
    users = credentials(auth, auth_file)  # before anything starts: a bad line is named, nothing runs
    state = AppState(Path(project_dir), brain=brain, yes=yes, model=model, brain_options=brain_options or {})
    state.people = list(users)  # who may review a round
    app = build_app(state)
    app.queue(default_concurrency_limit=4)
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, auth=list(users.items()) or None, share=share, prevent_thread_lock=not block,
        allowed_paths=[str(state.project.media.root.resolve())], theme=theme(),
        css=(ASSETS / "app.css").read_text(), head=f"<script>{(ASSETS / 'app.js').read_text()}</script>",
        show_error=True, quiet=not block, ssr_mode=False, footer_links=[],
    )
    return app, local_url
