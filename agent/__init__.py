"""The conversation: a tool-calling loop on langchain-core over the functions in `tools/`.

Imports `tools/`, `index/` and `prompts/`; never `ui/`. The loop, the command
router and the chat-model backends arrive with the agent issue.
"""
