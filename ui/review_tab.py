"""The Review tab: a keyboard-first panel of cards to approve, reject or correct, with filters,
text search and bulk approval by label and probability.

Each decision goes to the project's workbench before the panel changes. The browser hides a
decided card at once (ui/assets/app.js) and waits for the acknowledgement; the panel is sent
again only at a batch's end, after an undo or when something went wrong: Gradio's front end
slowed down with every large HTML update (measured).
"""

from __future__ import annotations

import html
import json

from index.errors import LabelchatError
from index.types import Action
from tools.wording import counted, plural

from . import views
from .errors import friendly, in_the_browser, log, shown
from .next_batch import Prepared
from .people import request_user, with_request

BATCH = 12
PREPARE_AT = 2  # cards left when the next batch is prepared (ui/next_batch.py): time to finish first
ORDERS = ["uncertain", "balanced", "confident", "random", "suspect"]


class ReviewTab:
    def __init__(self, app, state, chat):
        import gradio as gr

        self.state = state
        with gr.Tab("Review", elem_id="lc-review-tab"):
            with gr.Row():
                self.strategy = gr.Dropdown(ORDERS, value="uncertain", label="Order", scale=1)
                self.label_filter = gr.Dropdown([""], value="", label="Suggested label", scale=1)
                self.prob_range = gr.Textbox(value="0-1", label="Probability range", scale=1, elem_id="lc-range")
                self.search = gr.Textbox(placeholder="search, e.g. red sneakers", label="Find (CLIP models)",
                                         scale=2, elem_id="lc-search")
                next_batch = gr.Button("Next batch", elem_id="lc-next")
            with gr.Row():
                self.bulk_label = gr.Dropdown([""], value="", label="Approve all of label", scale=1,
                                              elem_id="lc-bulk-label")
                bulk_prob = gr.Slider(0.05, 1.0, value=0.9, step=0.01, label="with probability at least", scale=2,
                                      elem_id="lc-bulk-prob")
                bulk_preview = gr.Button("Preview", elem_id="lc-bulk-preview")
                # live only once a preview counted what it approves
                bulk_go = gr.Button("Approve them", variant="primary", elem_id="lc-bulk-go", interactive=False)
            bulk_info = gr.Markdown(elem_id="lc-bulk-info")
            bulk_previewed = gr.State(None)  # (label, threshold) of the preview shown
            self.cards_html = gr.HTML(elem_id="lc-review")
            self.batch_state = gr.State([])
            action = gr.Textbox(elem_id="lc-action", elem_classes=["lc-hidden"], show_label=False)
            act = gr.Button("act", elem_id="lc-act", elem_classes=["lc-hidden"])
            self.ack = gr.HTML(elem_id="lc-ack", elem_classes=["lc-hidden"])  # which decision was saved last

        panel = [self.cards_html, self.batch_state]
        filters = [self.strategy, self.label_filter, self.prob_range]
        show_batch = friendly(self.show_batch)
        chat.open_go.click(friendly(self.on_open), chat.open_ids, panel)
        next_batch.click(show_batch, filters, panel, api_name="batch")
        self.strategy.change(show_batch, filters, panel)
        self.label_filter.change(show_batch, filters, panel)
        self.prob_range.submit(show_batch, filters, panel)
        self.search.submit(friendly(self.on_search), [self.search, *filters], panel)
        # Decisions skip the queue (a direct request) and show no progress overlay: the
        # card must go at once. trigger_mode "multiple": fast key presses are not dropped.
        act.click(friendly(with_request(self.on_action)), [action, self.batch_state, *filters], [*panel, self.ack],
                  queue=False, show_progress="hidden", trigger_mode="multiple")
        # One queue for the bulk controls, in the order pressed: a preview's clearing (a changed
        # label or threshold) could otherwise land after the preview that followed it.
        bulk_queue = dict(concurrency_id="bulk", concurrency_limit=1)
        bulk_preview.click(friendly(self.on_preview), [self.bulk_label, bulk_prob], [bulk_info, bulk_previewed, bulk_go],
                           **bulk_queue)
        self.bulked = bulk_go.click(friendly(with_request(self.on_bulk)),
                                    [bulk_previewed, self.bulk_label, bulk_prob, *filters],
                                    [bulk_info, bulk_previewed, bulk_go, *panel], **bulk_queue)
        for bulk_input in (self.bulk_label, bulk_prob):  # a preview counts for the label and threshold it was made for
            bulk_input.change(lambda: ("", None, gr.update(interactive=False)), None,
                              [bulk_info, bulk_previewed, bulk_go], show_progress="hidden", **bulk_queue)
        app.load(self.label_choices, None, [self.label_filter, self.bulk_label])
        app.load(lambda: gr.update(visible=state.can_search_text()), None, self.search)  # CLIP models only
        app.load(show_batch, filters, panel)

    # -- batches --------------------------------------------------------------------------

    def show_batch(self, order, label, span="0-1", notice="", *, learn=False, first=None):
        """Choose and render a batch; with `learn`, refresh the suggestions from the decisions first;
        `first`: an item whose card leads the batch (the one just undone)."""
        self.state.next_batch.drop()
        cards = self.choose_batch(order, label, span, learn=learn)
        if first is not None:
            lead = next((c for c in cards if c.item.id == first), None) or self.state.reviewer().card(first)
            cards = [lead] + [c for c in cards if c.item.id != first][: BATCH - 1]
        return self.show(cards, notice, filtered=views.filter_text(label, *views.parse_range(span)))

    def choose_batch(self, order, label, span, *, learn, left_out=frozenset()):
        low, high = views.parse_range(span)
        with self.state.review_lock:
            reviewer = self.state.reviewer()
            if learn:
                reviewer.refresh()
            return reviewer.batch(order, BATCH, label=label or None, min_prob=low, max_prob=high, exclude=left_out)

    def prepare_next(self, order, label, span, left_out) -> Prepared:
        cards = self.choose_batch(order, label, span, learn=True, left_out=left_out)
        filtered = views.filter_text(label, *views.parse_range(span))
        return Prepared(self._html(cards, filtered=filtered), cards)

    def show(self, cards, notice="", html_text=None, filtered=""):
        self.state.cards = {c.item.id: c for c in cards}
        if html_text is None:
            html_text = self._html(cards, notice, filtered)
        return html_text, [c.item.id for c in cards]

    def render(self, ids, notice):
        return self._html(self.state.cards_for(ids), notice), ids

    def _html(self, cards, notice="", filtered=""):
        """The cards as HTML; with no other notice, a failed index rebuild's (the panel's one word on it)."""
        notice = notice or self.state.reviewer().index_problem() or ""
        return views.render_cards(cards, self._labels(), self.state.image_url, notice=notice, filtered=filtered)

    def next_key(self, order, label, span):
        """What a prepared next batch must have been prepared for."""
        return order, label, span, tuple(self._labels()), id(self.state.reviewer())

    def _labels(self) -> list[str]:
        return self.state.project.store.label_set().names

    def label_choices(self):
        import gradio as gr

        names = [""] + self._labels()
        return gr.update(choices=names), gr.update(choices=names)

    def on_open(self, raw):
        """A set shown in the chat, as cards in the Review panel (those still there)."""
        ids = [int(i) for i in (raw or "").split(",") if i.strip().isdigit()]
        cards = self.state.cards_for(ids)
        return self.show(cards, f"The {counted(len(cards), 'image')} shown in the chat")

    def on_search(self, text, order, label, span):
        if not text.strip():
            return self.show_batch(order, label, span)
        return self.show(self.state.reviewer().search_cards(text), f"Matches for {text!r}")

    # -- decisions ------------------------------------------------------------------------

    def on_action(self, raw, ids, order, label, span, login):
        """One decision or an undo, from a key press or a click on a card."""
        import gradio as gr

        try:
            request = json.loads(raw or "{}")
        except json.JSONDecodeError:
            return gr.update(), ids, ""
        state = self.state
        state.reviewer()  # opened (or reopened after a change) here, where the heap is frozen once
        item_id, kind = request.get("item"), request.get("action")
        ack = f'<span data-decided="{html.escape(str(item_id))}" data-t="{html.escape(str(request.get("t")))}"></span>'
        if kind == "undo":
            return (*self._undo(ids, order, label, span, request_user(login)), ack)
        if item_id not in ids:
            notice = f"#{item_id} was already decided (maybe in another tab); nothing was counted twice."
            return (*self.render(ids, notice), ack)
        try:
            state.workbench.decide(int(item_id), Action(kind), request.get("label"), actor=request_user(login))
        except LabelchatError as exc:  # the hidden card comes back, with the reason
            log.info("decision refused: %s", exc)
            return (*self.render(ids, in_the_browser(exc)), ack)
        ids = [i for i in ids if i != item_id]
        key = self.next_key(order, label, span)
        if len(ids) == PREPARE_AT:  # near the end: learn from the others, prepare the next batch meanwhile
            state.next_batch.prepare(key, set(ids), lambda left_out: self.prepare_next(order, label, span, left_out))
        if not ids:  # the batch is done: show the next one, learnt from it
            prepared = state.next_batch.take(key)
            if prepared is not None:
                return (*self.show(prepared.cards, html_text=prepared.html), ack)
            return (*self.show_batch(order, label, span, learn=True), ack)
        return gr.update(), ids, ack

    def _undo(self, ids, order, label, span, who):
        try:
            undone = self.state.workbench.undo(actor=who)
        except LabelchatError as exc:  # nothing to undo: said in the panel, and acknowledged
            return self.render(ids, in_the_browser(exc))
        first = undone.undone[0].item_id if undone.back_to_pending else None  # the card undone comes first
        return self.show_batch(order, label, span, undone.text, learn=True, first=first)

    # -- bulk approval --------------------------------------------------------------------

    def candidates(self, label, prob):
        if not label:
            raise shown("Choose the label to approve.")
        return self.state.reviewer().candidates(float(prob), label)

    def on_preview(self, label, prob):
        """The count a person sees before approving; 'Approve them' acts only on what was previewed."""
        import gradio as gr

        found = self.candidates(label, prob)
        text = f"**{len(found)}** pending {plural(len(found), 'item')} suggested as **{label}** with probability ≥ {prob:.2f}."
        if found:
            text += " Press **Approve them** to approve them (U in the panel, or 'undo' in the chat, takes them back)."
        return text, (label, float(prob)), gr.update(interactive=bool(found))

    def on_bulk(self, previewed, label, prob, order, filter_label, span, login):
        import gradio as gr

        if previewed != (label, float(prob)):
            raise shown("Press Preview first, to see how many items this approves.")
        count = len(self.candidates(label, prob))
        report = self.state.workbench.accept_above(float(prob), label, actor=request_user(login))
        html_text, ids = self.show_batch(order, filter_label, span, learn=True)
        return (f"Approved **{report.accepted}** of {counted(count, 'item')} as **{label}**.", None,
                gr.update(interactive=False), html_text, ids)
