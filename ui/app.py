"""The browser app: chat, a keyboard-first review panel, and a dashboard, on one project.

One module a tab (ui/chat_tab.py, review_tab.py, models_tab.py, labels_tab.py,
dashboard.py, rounds_tab.py); each callback calls one function of the agent or of
the project's workbench (tools/workbench.py, shared by the chat and the panels) and
renders its typed result with ui/views.py. Every decision is written to the store
before the panel changes; the store serialises writes from several tabs.
Binds 127.0.0.1 unless told otherwise, never shares publicly, sends nothing
to other hosts (analytics and run history off, system fonts).
"""

from __future__ import annotations

import gc
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
from tools.workbench import Workbench  # noqa: E402

from . import rounds_tab, views  # noqa: E402
from .chat_tab import ChatTab  # noqa: E402
from .dashboard import DashboardTab  # noqa: E402
from .errors import friendly  # noqa: E402
from .labels_tab import LabelsTab  # noqa: E402
from .models_tab import ModelsTab  # noqa: E402
from .next_batch import NextBatch  # noqa: E402
from .people import credentials  # noqa: E402
from .review_tab import ReviewTab  # noqa: E402

ASSETS = Path(__file__).parent / "assets"


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
        self.warm_up_error: str | None = None  # why the review loop could not be built as the server started

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

    def warm_up(self) -> threading.Thread:
        """Build the review loop in the background as the server starts, so the first page only
        chooses a batch (a million items: the loop takes 0.6 s to open, its first batch 0.7 s).
        A page that asks before it is built waits for this build, not a second one. A project
        that cannot review yet (no labels) is left as it is: the page says why."""
        def work() -> None:
            try:
                self.reviewer()
            except Exception as error:  # noqa: BLE001 - the page's own call reports it, worded for people
                self.warm_up_error = f"{type(error).__name__}: {error}"

        self.warm_up_error = None
        thread = threading.Thread(target=work, daemon=True, name="labelchat-warm-up")
        thread.start()
        return thread

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
    """The page: a header with the project's counts, then one tab a module (ui/*_tab.py, ui/dashboard.py)."""
    import gradio as gr

    with gr.Blocks(title=f"labelchat · {state.project.name}") as app:
        header = gr.HTML(header_html(state), elem_id="lc-header")
        chat = ChatTab(app, state)
        review = ReviewTab(app, state, chat)
        models = ModelsTab(state)
        labels = LabelsTab(state)
        dashboard = DashboardTab(state)
        with gr.Tab("Rounds", elem_id="lc-rounds-tab"):  # review rounds and the quality report (ui/rounds_tab.py)
            rounds_tab.build(app, state)
        # The header's counts after anything that decides, adds or trains. After a decision it
        # follows the acknowledgement (never delays it); fast key presses update it once.
        counts = lambda: header_html(state)  # noqa: E731
        review.ack.change(counts, None, header, show_progress="hidden", trigger_mode="always_last")
        for event in (*chat.changed, review.bulked, models.tick, *models.used, *labels.decided):
            event.then(counts, None, header, show_progress="hidden")
        dashboard.refresh.click(counts, None, header, show_progress="hidden")
        app.load(models.view, None, models.outputs)
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
    state.warm_up()
    app.queue(default_concurrency_limit=4)
    _, local_url, _ = app.launch(
        server_name=host, server_port=port, auth=list(users.items()) or None, share=share, prevent_thread_lock=not block,
        allowed_paths=[str(state.project.media.root.resolve())], theme=theme(),
        css=(ASSETS / "app.css").read_text(), head=f"<script>{(ASSETS / 'app.js').read_text()}</script>",
        show_error=True, quiet=not block, ssr_mode=False, footer_links=[],
    )
    return app, local_url
