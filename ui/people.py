"""Who is deciding: the app's users (--auth, --auth-file) and the name a decision is logged under.

An auth file holds one `user:password` a line ('#' comments and blank lines are skipped). The
browser app asks for one of these users; the command line checks its --user against the same
file when one is given (--auth-file or $LABELCHAT_AUTH_FILE), so the log names only known people.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from index.errors import LabelchatError

AUTH_FILE_ENV = "LABELCHAT_AUTH_FILE"
WEB_ACTOR = "web"  # the app's decisions when it asks for no login


def parse_credential(text: str, where: str = "--auth") -> tuple[str, str]:
    """'user:password' -> (user, password); an error that names where the text came from."""
    user, colon, password = text.strip().partition(":")
    user = user.strip()
    if not colon or not user or not password:
        raise LabelchatError(f"{where}: {text.strip()!r} is not user:password; write it like ana:secret.")
    if any(c.isspace() or not c.isprintable() for c in user) or len(user) > 64:
        raise LabelchatError(f"{where}: the user name {user!r} is not usable: give 1 to 64 characters "
                             f"without spaces or ':', e.g. ana:secret.")
    return user, password


def read_auth_file(path: str | Path) -> dict[str, str]:
    """user -> password from an auth file (see the module's docstring)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelchatError(f"The auth file {path} does not exist; write one 'user:password' a line "
                             f"(e.g. ana:secret) and pass it with --auth-file.") from None
    except UnicodeDecodeError as exc:
        raise LabelchatError(f"The auth file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}).") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, password = parse_credential(line, f"{path} line {number}")
        if user in users:
            raise LabelchatError(f"{path} line {number}: the user {user!r} is already on an earlier line; "
                                 f"give each user one line.")
        users[user] = password
    if not users:
        raise LabelchatError(f"The auth file {path} names no user; write one 'user:password' a line.")
    return users


def credentials(auth: Sequence[str] | str | None = None, auth_file: str | Path | None = None) -> dict[str, str]:
    """The app's users from repeated --auth and an --auth-file (empty: no login asked)."""
    users = dict(read_auth_file(auth_file)) if auth_file else {}
    for given in [auth] if isinstance(auth, str) else (auth or []):
        user, password = parse_credential(given)
        if user in users and users[user] != password:
            raise LabelchatError(f"--auth gives the user {user!r} another password than the auth file; give it once.")
        users[user] = password
    return users


def known_user(name: str, auth_file: str | Path | None = None) -> str:
    """`name`, after checking it against the auth file (--auth-file, else $LABELCHAT_AUTH_FILE) when
    there is one: a user who is not in it is refused."""
    auth_file = auth_file or os.environ.get(AUTH_FILE_ENV)
    if not auth_file:
        return name
    users = read_auth_file(auth_file)
    if name not in users:
        raise LabelchatError(f"The user {name!r} is not in the auth file {auth_file} (its users: "
                             f"{', '.join(sorted(users))}); pass --user with one of them, or add a line "
                             f"'{name}:PASSWORD' to the file.")
    return name


def request_user(request) -> str:
    """The logged-in user of a Gradio request (gr.Request.username), or WEB_ACTOR with no login."""
    return getattr(request, "username", None) or WEB_ACTOR


def with_request(fn):
    """Mark `fn`'s last parameter as a gr.Request, so that Gradio passes the request in. In a module
    with `from __future__ import annotations` an annotation is a string that Gradio cannot resolve
    when `gr` is imported inside a function (it would then pass nothing)."""
    import inspect

    import gradio as gr

    fn.__annotations__[list(inspect.signature(fn).parameters)[-1]] = gr.Request
    return fn
