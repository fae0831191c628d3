"""The edges people touch: the command line (and the Gradio app, with the browser UI issue)."""
