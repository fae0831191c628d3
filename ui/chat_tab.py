"""The Chat tab: the conversation with the agent, uploads, and the link that opens a set shown in
the chat as cards in the Review panel (wired by ui/review_tab.py)."""

from __future__ import annotations

from . import views
from .errors import friendly
from .people import request_user, with_request


class ChatTab:
    def __init__(self, app, state):
        import gradio as gr

        self.state = state
        with gr.Tab("Chat"):
            self.chat = gr.Chatbot(value=[], height=520, label="Conversation", elem_id="lc-chat")
            with gr.Row():
                self.message = gr.Textbox(placeholder="e.g. label them · show me the 20 least certain · help",
                                          show_label=False, scale=8, elem_id="lc-message")
                send = gr.Button("Send", variant="primary", scale=1, elem_id="lc-send")
                stop = gr.Button("Stop", scale=1)
            upload = gr.File(label="Add images (files or a zip)", file_count="multiple")
            # app.js fills these when a person clicks "open in Review" under a set the chat showed
            self.open_ids = gr.Textbox(elem_id="lc-open-ids", elem_classes=["lc-hidden"], show_label=False)
            self.open_go = gr.Button("open", elem_id="lc-open", elem_classes=["lc-hidden"])
        respond = friendly(with_request(self.respond))
        turn = send.click(respond, [self.message, self.chat], [self.chat, self.message], api_name="chat")
        submitted = self.message.submit(respond, [self.message, self.chat], [self.chat, self.message],
                                        api_visibility="private")
        stop.click(None, cancels=[turn, submitted])
        uploaded = upload.upload(friendly(with_request(self.on_upload)), [upload, self.chat], self.chat)
        app.load(self.welcome, self.chat, self.chat)
        self.changed = [turn, submitted, uploaded]  # events after which the header's counts are redrawn

    def respond(self, text, history, login):
        """One turn, streamed: the person's message at once, then each step as it comes."""
        history = list(history or []) + [{"role": "user", "content": text}]
        yield history, ""
        for step in self.state.turn(text, request_user(login)):
            history = views.step_to_messages(step, history, self.state.image_url)
            yield history, ""

    def welcome(self, history):
        return history or [{"role": "assistant", "content": self.state.session.welcome()}]

    def on_upload(self, files, history, login):
        if not files:
            return history
        paths = [getattr(f, "name", f) for f in files]
        return list(self.respond("add " + " ".join(str(p) for p in paths), history, login))[-1][0]
