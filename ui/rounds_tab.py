"""The Rounds tab of the browser app: start a review round, review its items blind as the logged-in
user, settle disagreements, and read the round's report and the dataset's quality report.

Each callback calls one function of tools/rounds.py or tools/quality/report.py; mistakes come back
as gr.Error with the tool's own message. Written without `from __future__ import annotations`:
Gradio finds the `gr.Request` parameter by its annotation, which must be the class itself.
"""

import html

from index.errors import LabelchatError

from .errors import in_the_browser, shown
from .people import request_user


def round_markdown(report) -> str:
    """A round's report as Markdown (pure)."""
    kappa = "n/a" if report.kappa is None else f"{report.kappa:.3f}"
    agreement = "n/a" if report.agreement is None else f"{report.agreement:.0%}"
    lines = [f"**Round {report.round.id}** ({report.round.status}): {report.reviewed} of {report.items} reviewed · "
             f"agreement {agreement} · Cohen's kappa **{kappa}** · {report.disagreed} disagreement(s), "
             f"{report.adjudicated} adjudicated", "", "| label | agreed | reviewed |", "|---|---:|---:|"]
    lines += [f"| {c.label} | {c.agreed} | {c.reviewed} |" for c in report.per_class]
    if report.per_annotator:
        lines += ["", "| person | right | settled items |", "|---|---:|---:|"]
        lines += [f"| {a.name} | {a.correct} | {a.judged} |" for a in report.per_annotator]
    lines += [f"\n_{note}_" for note in report.notes]
    return "\n".join(lines)


def confusion_html(quality) -> str:
    """The quality report's confusion matrix, shaded like the Models tab's (pure)."""
    from .views import confusion_html as shaded

    if not quality.checked:
        return '<div class="lc-empty">No checked items yet: review a round (or audit an auto-accept) first.</div>'
    return shaded({"per_class": [{"label": label} for label in quality.labels], "confusion": quality.confusion},
                  "checked items: rows are the label given, columns the right label")


def image_html(url: str | None, caption: str) -> str:
    if url is None:
        return f"<p>{html.escape(caption)}</p>"
    return (f'<figure class="lc-round-item"><img src="{html.escape(url)}" style="max-height:360px" alt="">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def build(app, state) -> None:
    """The tab's contents, inside the caller's `gr.Tab` of `app`; `state` is the app's AppState."""
    import gradio as gr

    from tools import rounds as r
    from tools.quality.report import format_markdown, quality_report

    store = state.project.store
    with gr.Row():
        size = gr.Number(value=30, precision=0, minimum=1, label="Items to draw (0: for 95% ± 5%)", scale=1)
        reviewer = gr.Textbox(label="Reviewer (optional)", scale=1, elem_id="lc-round-reviewer")
        start = gr.Button("Start a round", variant="primary", scale=1, elem_id="lc-round-start")
    info = gr.Markdown(elem_id="lc-round-info")
    with gr.Row():
        with gr.Column():
            gr.Markdown("**Review** (you do not see the first label)")
            item_view = gr.HTML(elem_id="lc-round-item")
            item_id = gr.State(None)
            answer = gr.Radio([], label="Your label", elem_id="lc-round-answer")
            with gr.Row():
                send = gr.Button("Save my label", variant="primary", elem_id="lc-round-send")
                undo = gr.Button("Undo my last answer", elem_id="lc-round-undo")
        with gr.Column():
            gr.Markdown("**Adjudicate** disagreements")
            case_view = gr.HTML(elem_id="lc-round-case")
            case_id = gr.State(None)
            verdict = gr.Radio([], label="The right label", elem_id="lc-round-verdict")
            settle = gr.Button("Settle", elem_id="lc-round-settle")
    refresh = gr.Button("Refresh the reports", elem_id="lc-round-refresh")
    report_view = gr.Markdown(elem_id="lc-round-report")
    confusion_view = gr.HTML(elem_id="lc-quality-confusion")
    quality_view = gr.Markdown(elem_id="lc-quality-report")

    def current():
        try:
            return r.current_round(store)
        except LabelchatError:
            return None

    def next_item(request: gr.Request, notice: str = ""):
        labels = store.label_set().names
        round_ = current()
        if round_ is None:
            return image_html(None, notice or "No open round: start one above."), None, gr.update(choices=labels, value=None)
        try:
            item = r.next_to_review(store, round_.id, request_user(request))
        except LabelchatError as exc:
            return image_html(None, f"{notice} {exc}".strip()), None, gr.update(choices=labels, value=None)
        if item is None:
            return image_html(None, f"{notice} Round {round_.id}: nothing left for you to review.".strip()), None, \
                gr.update(choices=labels, value=None)
        return image_html(state.image_url(item.item_id), f"{notice} #{item.item_id} of round {round_.id}".strip()), \
            item.item_id, gr.update(choices=labels, value=None)

    def next_case(notice: str = ""):
        labels = store.label_set().names
        round_ = current()
        cases = r.disagreements(store, round_.id) if round_ else []
        if not cases:
            return image_html(None, f"{notice} No disagreement waits.".strip()), None, gr.update(choices=labels, value=None)
        case = cases[0]
        caption = (f"{notice} #{case.item_id}: {case.first_label} (by {case.first_actor}) or {case.review_label} "
                   f"(by {case.reviewer}); {len(cases)} waiting").strip()
        return image_html(state.image_url(case.item_id), caption), case.item_id, gr.update(choices=labels, value=None)

    def reports():
        try:
            round_ = r.current_round(store, open_only=False)
        except LabelchatError:
            round_ = None
        text = round_markdown(r.round_report(store, round_.id)) if round_ else "No review round yet."
        quality = quality_report(store)
        return text, confusion_html(quality), format_markdown(quality)

    def on_start(count, who, request: gr.Request):
        try:
            round_ = r.start_round(store, actor=request_user(request), size=int(count) or None,
                                   reviewer=(who or "").strip() or None, people=state_people())
        except LabelchatError as exc:
            raise shown(in_the_browser(exc)) from None
        return (f"Started round **{round_.id}**: {round_.why}.", *next_item(request), *next_case(), *reports())

    def state_people():
        people = getattr(state, "people", None)
        return list(people) if people else None

    def on_send(shown, label, request: gr.Request):
        if shown is None or not label:
            raise gr.Error("Choose a label for the image first.")
        notice = ""
        try:
            r.review_item(store, current().id, int(shown), label, request_user(request))
        except r.AlreadyAnsweredError as exc:
            notice = str(exc)
        except LabelchatError as exc:
            raise shown(in_the_browser(exc)) from None
        return (*next_item(request, notice), *next_case(), *reports())

    def on_undo(request: gr.Request):
        round_ = current()
        if round_ is None:
            raise gr.Error("There is no open round.")
        try:
            undone = r.undo_answer(store, round_.id, request_user(request))
        except LabelchatError as exc:
            raise shown(in_the_browser(exc)) from None
        return (*next_item(request, f"Took back your answer on #{undone.item_id}."), *next_case(), *reports())

    def on_settle(shown, label, request: gr.Request):
        if shown is None or not label:
            raise gr.Error("Choose the right label first.")
        try:
            r.adjudicate(store, current().id, int(shown), label, request_user(request))
        except r.AlreadyAnsweredError as exc:
            return (*next_case(str(exc)), *reports())
        except LabelchatError as exc:
            raise shown(in_the_browser(exc)) from None
        return (*next_case(f"#{shown} settled as {label}."), *reports())

    review_outputs = [item_view, item_id, answer]
    report_outputs = [report_view, confusion_view, quality_view]
    case_outputs = [case_view, case_id, verdict]
    start.click(on_start, [size, reviewer], [info, *review_outputs, *case_outputs, *report_outputs],
                api_name="round_start")
    send.click(on_send, [item_id, answer], [*review_outputs, *case_outputs, *report_outputs], api_name="round_answer")
    undo.click(on_undo, None, [*review_outputs, *case_outputs, *report_outputs])
    settle.click(on_settle, [case_id, verdict], [*case_outputs, *report_outputs], api_name="round_settle")
    refresh.click(reports, None, report_outputs, api_name="quality_report")
    refresh.click(next_item, None, review_outputs)
    refresh.click(next_case, None, case_outputs)
    app.load(next_item, None, review_outputs)
    app.load(next_case, None, case_outputs)
    app.load(reports, None, report_outputs)
