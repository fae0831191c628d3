"""What the agent's tools act on: the project, its workbench, and the hooks the loop sets per call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from index.project import Project
from tools.workbench import Workbench

ProgressFn = Callable[[int, int, str], None]


@dataclass
class AgentContext:
    """What the tools act on, and the hooks the loop sets for the running call. Every change to
    the project goes through its `workbench` (tools/workbench.py), which the browser app shares
    with its review panel."""

    project: Project
    model: str | None = None
    device: str | None = None
    progress: ProgressFn = lambda done, total, what: None
    should_stop: Callable[[], bool] = lambda: False
    notices: list[str] = field(default_factory=list)
    conversation: Any = None  # agent.conversation.ConversationState: what was shown and given
    actor: str = "chat"  # who decides: the decision log's actor (--user, or the app's logged-in user)
    workbench: Workbench | None = None  # given by the app; else one of this conversation's own

    def __post_init__(self) -> None:
        if self.workbench is None:
            self.workbench = Workbench(self.project, model=self.model, device=self.device)
        self.workbench.on_notice = self.notices.append
        self.workbench.on_progress = lambda done, total, what: self.progress(done, total, what)  # set per call

    def reviewer(self):
        """The project's review loop (the workbench builds it once and keeps it while current)."""
        return self.workbench.reviewer()
