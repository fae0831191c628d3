"""The offline brain's understanding: a message -> one tool call, or a reply.

Deterministic and instant. The phrasings live in prompts/router.yaml; this
module reads the arguments out of the message and never invents one: when a
required argument is not in the message, the reply asks for it.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache

import prompts

from . import references, typos
from .conversation import Context

NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "twenty": 20, "fifty": 50, "hundred": 100}
URL = re.compile(r"https?://[^\s,;<>\"')]+", re.I)
FORMATS = {"imagefolder": "imagefolder", "image folder": "imagefolder", "folders": "imagefolder",
           "csv": "csv", "jsonl": "jsonl", "json lines": "jsonl", "coco": "coco", "hugging face": "hf",
           "huggingface": "hf", "hf": "hf"}


@dataclass(frozen=True)
class Route:
    tool: str | None  # None: answer with `reply` instead
    args: dict = field(default_factory=dict)
    reply: str = ""
    note: str = ""  # how a misspelt word was read, said before acting


@lru_cache(maxsize=1)
def _config() -> dict:
    return prompts.load_yaml("router.yaml")


_Ask = references.Ask  # raised by a reader's helper: answer with this text and change nothing


def route(message: str, labels: list[str] | None = None, context: Context | None = None) -> Route:
    """What the person asks for, given the project's label set (to read labels in messages) and
    what the conversation showed last (to read 'approve them', 'the first is a bird')."""
    labels = labels or []
    context = context or Context()
    repaired, readings = _repair_typos(_quote_paths_on_disk(" ".join(message.strip().split())), labels)
    lowered = repaired.lower()
    if not lowered or len(lowered) > 2000:
        return Route(None, reply=_help() if not lowered else "That message is too long for me; say one thing at a time.")
    try:
        found = _follow_up(lowered, labels, context) or _first_route(repaired, lowered, labels)
        if found is None:
            return _not_understood(message.strip(), readings)
        found = _read_label_arg(found, labels)
        _shown_or_asked(found, lowered, context)
    except _Ask as ask:
        return Route(None, reply=str(ask))
    taken = [r for r in readings if r.best]
    if taken and found.tool:
        note = _config()["readings"]["taken"].format(
            readings=", ".join(f"'{r.word}' as '{r.best}'" for r in taken))
        found = Route(found.tool, found.args, found.reply, " ".join(filter(None, [note, found.note])))
    return found


# -- follow-ups: references to what was shown -----------------------------------------------


def _follow_up(lowered: str, labels: list[str], context: Context) -> Route | None:
    """'approve them', 'the first three are dogs', 'not that one', ... (None: not a follow-up)."""
    config = _config()["references"]
    body = re.sub(config["trim"], "", lowered).strip(" .!?")
    for form in config["forms"]:
        match = re.fullmatch(form["pattern"], body)
        named = match and form.get("ids_too") and re.fullmatch(r"#?(\d+)", match.group("ref").strip())
        if match is None or not (named or references.find(match.group("ref"))):
            continue
        if form.get("ask"):
            raise _Ask(config["replies"][form["ask"]])
        ids = [int(named.group(1))] if named else list(references.resolve(match.group("ref"), context, config["replies"]).ids)
        groups = match.groupdict()
        action = form.get("action") or _verb_action(groups.get("verb") or "")
        if action == "correct":
            label, note = _label_reading(groups["label"], labels)
            if len(ids) == 1:
                return Route("correct", {"item_id": ids[0], "label": label}, note=note)
            return Route("correct_many", {"item_ids": ids, "label": label}, note=note)
        args: dict = {"item_ids": ids, "action": action}
        note = ""
        if groups.get("label"):
            args["label"], note = _label_reading(groups["label"], labels)
        return Route("decide", args, note=note)
    return None


def _verb_action(verb: str) -> str:
    return "skip" if verb == "skip" else "reject" if verb in ("reject", "decline", "refuse", "no to") else "accept"


def _label_reading(said: str, labels: list[str]) -> tuple[str, str]:
    """A label as written -> (the label, a note when a misspelling was read); _Ask when two
    labels are equally near."""
    said = _clean_label(re.sub(r"^(?:an?|the)\s+", "", said.strip()))
    label = _singular(said, labels)
    if label in labels or not labels:
        return label, ""
    reading = typos.read(said, labels)
    if reading.best is None and said != label:
        reading = typos.read(label, labels)
    if reading.best:
        return reading.best, _config()["readings"]["taken"].format(readings=f"'{said}' as '{reading.best}'")
    if len(reading.nearest) == 2 and typos.distance(said, reading.nearest[1]) <= typos.allowed_edits(said) + 1:
        raise _Ask(_config()["readings"]["which_label"].format(said=said, a=reading.nearest[0], b=reading.nearest[1]))
    return label, ""


def _read_label_arg(found: Route, labels: list[str]) -> Route:
    """A misspelt label in a tool's arguments ('12 is a windmil') is read as the nearest label."""
    if found.tool not in ("correct", "decide", "accept_above", "review_batch") or not found.args.get("label"):
        return found
    if found.tool in ("decide", "review_batch") and found.args["label"] in labels:
        return found
    label, note = _label_reading(found.args["label"], labels)
    return Route(found.tool, {**found.args, "label": label}, found.reply, " ".join(filter(None, [found.note, note])))


def _shown_or_asked(found: Route, lowered: str, context: Context) -> None:
    """'#3 is a cat' right after a batch without #3 in it, when the batch has a 3rd image: the
    person may mean the 3rd one shown. Asked back unless they said 'image 3' or 'item 3'."""
    if found.tool not in ("decide", "correct") or not context.shown:
        return
    ids = found.args.get("item_ids") or [found.args.get("item_id")]
    if any(i in context.shown for i in ids) or re.search(r"\b(item|image|photo|picture|id)s?\s*#?\d", lowered):
        return
    for i in ids:
        if isinstance(i, int) and 1 <= i <= len(context.shown):
            raise _Ask(_config()["references"]["replies"]["id_or_position"].format(
                id=i, position=_ordinal(i), other=context.shown[i - 1]))


def _ordinal(n: int) -> str:
    return {1: "1st", 2: "2nd", 3: "3rd"}.get(n if n < 20 else n % 10, f"{n}th") if n % 100 not in (11, 12, 13) else f"{n}th"


def _first_route(text: str, lowered: str, labels: list[str]) -> Route | None:
    """The first intent whose pattern matches and whose reader can read the message."""
    for intent in _config()["intents"]:
        if not re.search(intent["pattern"], lowered):
            continue
        if "reply" in intent:
            return Route(None, reply=intent["reply"])
        tool = intent["tool"]
        reader = _READERS.get(intent.get("reader", tool))
        result = reader(text, lowered, labels) if reader else {}
        if result is None:
            continue  # the pattern matched, but this is not really that request
        if not intent.get("negation_understood"):
            _refuse_negation(tool, lowered, labels)
        if isinstance(result, str):
            return Route(None, reply=result)
        if tool == "help":
            return Route(None, reply=_help())
        return Route(tool, result)
    return None


def _help() -> str:
    """The help text: one example per line, as a markdown list (readable in a terminal too)."""
    config = _config()["help"]
    lines = [f"- `{example[0]}`" + (f" ({example[1]})" if len(example) > 1 else "") for example in config["examples"]]
    return "\n".join([config["intro"], *lines])


def _not_understood(message: str, readings: list[typos.Reading] = ()) -> Route:
    """A short answer: not understood, the two readings of an ambiguous word, the nearest
    example if one is near, and 'help'."""
    config = _config()
    unclear = next((r for r in readings if r.best is None and len(r.nearest) == 2), None)
    if unclear:
        return Route(None, reply=config["readings"]["which_word"].format(
            message=message[:200], word=unclear.word, a=unclear.nearest[0], b=unclear.nearest[1]))
    examples = [example[0] for example in config["help"]["examples"]]
    likeness = {e: difflib.SequenceMatcher(None, message.lower(), e.lower()).ratio() for e in examples}
    best = max(likeness, key=likeness.get)
    nearest = config["nearest"].format(example=best) if likeness[best] >= config["nearest_cutoff"] else ""
    return Route(None, reply=config["unknown"].format(message=message[:200], nearest=nearest))


def _missing(tool: str) -> str:
    return _config()["missing"][tool]


@lru_cache(maxsize=1)
def _vocabulary() -> list[str]:
    return list(_config()["vocabulary"])


def _repair_typos(text: str, labels: list[str] = ()) -> tuple[str, list[typos.Reading]]:
    """'exprot' -> 'export', 'lable' -> 'label': a word within a small edit of one keyword, and
    clearly nearer to it than to any other, becomes that keyword (not inside quotes: a quoted
    path or label is as written, and so is a project label). Returns the text and the readings."""
    parts = QUOTED_SPAN.split(text)
    readings: list[typos.Reading] = []
    repaired = "".join(part if QUOTED_SPAN.fullmatch(part) else _repair_words(part, readings, labels) for part in parts)
    return repaired, readings


def _repair_words(text: str, readings: list, labels) -> str:
    words = text.split(" ")
    vocabulary = _vocabulary()
    own = {label.lower() for label in labels} | {label.lower() + "s" for label in labels}
    for i, word in enumerate(words):
        core = word.strip(".,!?;:").lower()
        if len(core) < 5 or core in vocabulary or URL.match(word) or "/" in word or "-" in core or not core.isalpha() \
                or core in own:
            continue
        reading = typos.read(core, vocabulary)
        if reading.best and reading.best.rstrip("sd") == core.rstrip("sd"):  # an inflection, not a typo
            continue
        if reading.best:
            words[i] = word.lower().replace(core, reading.best)
            readings.append(typos.Reading(core, reading.best, reading.nearest))
        elif len(reading.nearest) == 2 and typos.distance(core, reading.nearest[1]) <= typos.allowed_edits(core):
            readings.append(typos.Reading(core, None, reading.nearest))
    return " ".join(words)


# -- paths: quoted ones stay whole, and so do unquoted ones with spaces that exist on disk ----

QUOTED = r"(?<!\w)\"[^\"]+\"|(?<!\w)'[^']+'(?!\w)|\u201c[^\u201d]+\u201d|\u2018[^\u2019]+\u2019"
QUOTED_SPAN = re.compile(f"({QUOTED})")
TOKEN = re.compile(f"{QUOTED}|\\S+")
PATH_START = re.compile(r"^([~./]|[A-Za-z]:\\)")
MEDIA_FILE = re.compile(r"\.(zip|txt|csv|tsv|jpe?g|png|webp|gif|bmp|tiff?)$", re.I)
MAX_PATH_WORDS = 8


def _looks_like_path(token: str) -> bool:
    return bool(PATH_START.match(token) or "/" in token or "\\" in token or MEDIA_FILE.search(token))


def _exists(path: str) -> bool:
    try:
        return os.path.exists(os.path.expanduser(path))
    except (OSError, ValueError):
        return False


def _quote_paths_on_disk(text: str) -> str:
    """`add /tmp/my photos/a.png` -> `add "/tmp/my photos/a.png"` when that file or folder exists:
    the longest run of words from a path-like word that names something on disk."""
    parts = QUOTED_SPAN.split(text)
    return "".join(part if QUOTED_SPAN.fullmatch(part) else _quote_runs(part) for part in parts)


def _quote_runs(text: str) -> str:
    words, out, i = text.split(" "), [], 0
    while i < len(words):
        run = _path_run(words, i) if _looks_like_path(words[i]) else 0
        if run:
            joined = " ".join(words[i:i + run])
            path = joined.rstrip(".,;!?")
            out.append(f'"{path}"{joined[len(path):]}')
            i += run
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def _path_run(words: list[str], start: int) -> int:
    """How many words from `start` make the longest existing path with a space (0: none)."""
    for end in range(min(len(words), start + MAX_PATH_WORDS), start + 1, -1):
        if _exists(" ".join(words[start:end]).rstrip(".,;!?")):
            return end - start
    return 0


def _without_paths(lowered: str) -> str:
    """The words of a message, less quoted text, URLs and paths (which may hold any word)."""
    tokens = [t for t in TOKEN.findall(URL.sub(" ", lowered)) if not QUOTED_SPAN.fullmatch(t)]
    return " ".join(t for t in tokens if not _looks_like_path(t.strip(",;")))


# -- what the router cannot represent: negations, several requests in one message ----------


def _refuse_negation(tool: str | None, lowered: str, labels: list[str]) -> None:
    """Raise _Ask when a message to a tool that changes things turns round or carves out.
    The project's label names are not searched ("no defect" may be a label), and for the
    label-setting tools only clause-level exclusions count ("cat, dog, but not bird")."""
    config = _config()["negation"]
    if tool not in config["tools"]:
        return
    rest = _without_interjection(_without_paths(lowered))
    for pattern in config["understood"].get(tool, []):
        rest = re.sub(pattern, " ", rest)
    for label in sorted(labels, key=len, reverse=True):
        rest = re.sub(rf"(?<!\w){re.escape(label.lower())}(?!\w)", " ", rest)
    found = re.search(config["words_for"].get(tool, config["words"]), rest)
    if found:
        reply = config["replies"].get(tool, config["replies"]["default"])
        raise _Ask(reply.format(word=_phrase_around(rest, found)))


def _understood_negation(tool: str, lowered: str) -> bool:
    return any(re.search(pattern, lowered) for pattern in _config()["negation"]["understood"].get(tool, []))


def _without_interjection(lowered: str) -> str:
    """'no, 14 should be dam' -> '14 should be dam': a leading 'no,' answers the last reply."""
    return re.sub(_config()["interjection"], " ", lowered)


def _phrase_around(text: str, found: re.Match) -> str:
    """The negation's whole word and the word after it ("don't approve", "except triangles")."""
    start = found.start()
    while start and (text[start - 1].isalnum() or text[start - 1] in "'\u2019"):
        start -= 1
    following = re.match(r"\s*[\w'-]+", text[found.end():])
    return (text[start:found.end()] + (following.group(0) if following else "")).strip()


# -- argument readers: each returns args, a reply string (missing argument), or None -------


def _numbers(text: str) -> list[float]:
    values = [float(n) for n in re.findall(r"(?<![\w.#/])(\d+(?:\.\d+)?)(?![\w/])", text)]
    return values


ID = r"(?<![\w.])#?(\d+)\b(?!\s*%|\.\d)"
ID_RANGE = ID + r"\s*(?:-|\u2013|\u2014|\.\.\.?|to|through|thru|till|until)\s*#?(\d+)\b(?!\s*%|\.\d)"


def _ids(lowered: str) -> list[int]:
    """Item ids as written ('12 13', '#7'), ranges ('12-15', 'items 20 to 25') expanded."""
    body = URL.sub(" ", lowered)
    ids: list[int] = []
    for low, high, single in re.findall(f"{ID_RANGE}|{ID}", body):
        ids.extend(_id_range(int(low), int(high)) if low else [int(single)])
    _at_most(len(ids))
    return ids


def ids_in(message: str) -> list[int]:
    """The item ids a message names (ranges expanded; none when it names too many)."""
    try:
        return _ids(message.lower())
    except _Ask:
        return []


def _id_range(low: int, high: int) -> range:
    if high < low:
        raise _Ask(_config()["backwards_range"].format(low=low, high=high))
    _at_most(high - low + 1)
    return range(low, high + 1)


def _at_most(count: int) -> None:
    most = _config()["max_ids"]
    if count > most:
        raise _Ask(_config()["too_many_ids"].format(count=count, most=most))


def _probability(lowered: str) -> float | None:
    match = re.search(r"(\d+(?:\.\d+)?)\s*(%|percent|pct)", lowered)
    if match:
        return float(match.group(1)) / 100
    match = re.search(r"(?:above|over|at least|>=|>|greater than|higher than|min(?:imum)?|probability|confidence|prob)\s*(?:of\s*)?(\d*\.\d+|\d+)", lowered)
    if match:
        value = float(match.group(1))
        return value / 100 if value > 1 and "." not in match.group(1) and value <= 100 else value
    return None


def _singular(word: str, labels: list[str]) -> str:
    for label in labels:
        if word == label.lower() or word in (label.lower() + "s", label.lower() + "es"):
            return label
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _known_label_in(lowered: str, labels: list[str]) -> str | None:
    for label in sorted(labels, key=len, reverse=True):
        name = label.lower()
        if re.search(rf"\b{re.escape(name)}(e?s)?\b", lowered):
            return label
    return None


NOUNS_AFTER_LABEL = r"(?:predictions?|suggestions?|ones?|images?|photos?|pictures?|pics|items?|guesses)"
FILLER_END = r"(?:\s+(?:too|as well|also|please|pls|thanks|for me|now))+\W*$"


def _quoted(text: str) -> list[str]:
    """Every 'quoted' or "quoted" phrase in the message."""
    pattern = r"(?<!\w)[\"'\u2018\u201c]([^\"'\u2018\u2019\u201c\u201d]+)[\"'\u2019\u201d](?!\w)"
    return [q.strip() for q in re.findall(pattern, text)]


def _clean_label(label: str) -> str:
    label = re.sub(FILLER_END, "", label.strip())
    label = re.sub(rf"\s+{NOUNS_AFTER_LABEL}$", "", label)
    return label.strip().strip("'\"`.!?").strip()


def _split_labels(text: str) -> list[str]:
    text = re.sub(r"\s+(or|and|&)\s+", ",", text.strip().strip(".!?"))
    parts = re.split(r"[,;/|]|\s+-\s+", text)
    labels = [_clean_label(p) for p in parts]
    return [l.lower() for l in labels if l and re.search(r"\w", l)]


def _read_set_labels(text: str, lowered: str, labels: list[str]):
    if re.search(r"\blabel (?:these|them|those|the \w+)?\s*(?:as|into|with)\W*$", lowered):
        return _missing("set_labels")
    match = re.search(
        r"(?:labels?|classes|categories|tags?)\s*(?:(?:are|is|will be|should be|to)\s*[:=]?|[:=])\s*(.+)$"
        r"|(?:use|want|need|like) (?:the )?(?:labels?|classes|categories)\s*:?\s+(.+)$"
        r"|label set (?:with|to|is)?\s*:?\s+(.+)$"
        r"|label (?:these|them|those|the (?:images|photos|pictures|items))?\s*(?:as|into|with)\s+(.+)$"
        r"|(?:sort|classify|split|put) (?:these|them|the \w+)? ?(?:in ?to|as)\s+(.+)$",
        lowered,
    )
    if not match:
        return None
    found = _split_labels(next(g for g in match.groups() if g))
    found = [re.sub(r"^(either|a|an|the)\s+", "", l) for l in found]
    return {"labels": found} if found else _missing("set_labels")


def _read_add_labels(text: str, lowered: str, labels: list[str]):
    if _sources(text):
        return None  # "add data/pets using the folder names as labels" adds images
    quoted = _quoted(text)
    if quoted:
        return {"labels": [q.lower() for q in quoted]}
    match = re.search(r"(?:labels?|class(?:es)?|categor(?:y|ies))\s*(?:called|named|for|:)?\s*(.*)$", lowered)
    rest = match.group(1) if match else ""
    rest = re.sub(r"^(?:please|pls)\W*", "", re.sub(FILLER_END, "", rest)).strip(" :")
    if not rest or rest in ("called", "named"):
        return _missing("add_labels")
    found = [re.sub(r"^(a|an|the)\s+", "", l) for l in _split_labels(rest)]
    return {"labels": found} if found else _missing("add_labels")


# (pattern, value) in order: the first pattern found in the message gives the value
INCLUDE_WORDS = (
    (r"\b(only|just) (the )?confirmed|confirmed (labels )?only|\b(without|no|not|excluding) (the |any )?"
     r"(suggest|predict|guess)\w*", "confirmed"),
    (r"suggest|predict|includ\w* (the )?(guess|prediction)|everything", "suggested"),
)
ACTION_WORDS = (
    (r"\b(reject|decline|refuse|no to|wrong)\b", "reject"),
    (r"\bskip\b", "skip"),
    (r"\b(approve|accept|confirm|yes to)\b|\b(ok|okay)\b(?=\s*(#|\d|items?\b|images?\b))", "accept"),
)
# "12 is a windmill" in a message (not "12 is wrong", which is a rejection)
CORRECTION = re.compile(r"#?\b\d+\s*(?:is|should be|must be|=)\s+(?!(?:not|wrong|incorrect|right|correct|fine|ok|good|bad)\b)"
                        r"[^,;.]+?(?=\s*(?:[,;.]|\band\b|\bthen\b|\bbut\b|$))")
STRATEGY_WORDS = (
    (r"unsure|uncertain|least (sure|certain|confident)|hardest|doubt|not sure|borderline|confus", "uncertain"),
    (r"most (sure|certain|confident)|surest|easiest|confident|obvious", "confident"),
    (r"\brandom", "random"),
    (r"balanced|mix|each (label|class)|every (label|class)", "balanced"),
)
TRAIN_KIND_WORDS = ((r"fine[- ]?tun|whole (image )?model|full", "finetune"), (r"\bprobe\b|linear", "probe"))


def _first_match(lowered: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((value for pattern, value in table if re.search(pattern, lowered)), None)


def _one_action(lowered: str) -> str | None:
    """The one decision a message asks for (None: none named); _Ask when it names several."""
    found = {value: m.start() for pattern, value in ACTION_WORDS if (m := re.search(pattern, lowered))}
    actions = sorted(found, key=found.get)
    if len(actions) > 1:
        raise _Ask(_config()["several"]["actions"].format(actions=" and to ".join(actions)))
    return actions[0] if actions else None


def _no_correction_besides(lowered: str) -> None:
    """_Ask when a decision also gives an image a label ('approve 12, 13 is a windmill')."""
    if CORRECTION.search(lowered):
        action = _one_action(lowered) or "decide"
        raise _Ask(_config()["several"]["correction_and_action"].format(action=action))


def _one_correction(lowered: str) -> None:
    """_Ask when a correction comes with a second correction or with a decision."""
    clauses = CORRECTION.findall(lowered)
    if len(clauses) > 1:
        listed = ", then ".join(f"'{clause.strip()}'" for clause in clauses)
        raise _Ask(_config()["several"]["corrections"].format(clauses=listed))
    action = _one_action(_without_interjection(lowered))
    if action:
        raise _Ask(_config()["several"]["correction_and_action"].format(action=action))


def _read_export(text: str, lowered: str, labels: list[str]):
    args: dict = {}
    for word, fmt in FORMATS.items():
        if re.search(rf"\b{re.escape(word)}\b", lowered):
            args["format"] = fmt
            break
    include = _first_match(lowered, INCLUDE_WORDS)
    if include:
        args["include"] = include
    if re.search(r"\b(replac\w*|overwrit\w*)\b", _without_paths(lowered)):
        args["replace"] = True
    out_dir = _export_folder(text)
    if not out_dir:
        return _missing("export_dataset")
    asked = None if "format" in args else _unknown_format(lowered)
    if asked:
        return _config()["formats"].format(asked=asked)
    return {"out_dir": out_dir, **args}


EXPORT_INTO = r"\b(?:to|into|in|at|under)\s+(?:the )?(?:folder |directory |dir )?"


def _export_folder(text: str) -> str | None:
    """The folder after 'to' ('into', 'in', ...): quoted, a path, or one bare word."""
    quoted = re.search(EXPORT_INTO + QUOTED_SPAN.pattern, text, re.I)
    if quoted:
        return quoted.group(1)[1:-1].strip()
    path = re.search(EXPORT_INTO + r"([A-Za-z]:[\\/][^\s,;]*|[~./][^\s,;]*|[\w.-]+/[^\s,;]*)", text, re.I)
    if not path:
        bare = re.search(r"\b(?:to|into)\s+(?:the )?(?:folder |directory |dir )?([\w.-]+)\b", text, re.I)
        words = set(" ".join(FORMATS).split()) | {"a", "an", "the", "my", "it", "them", "disk", "file", "folder", "format", "me"}
        path = bare if bare and bare.group(1).lower() not in words else None
    return path.group(1).rstrip(".!?") if path else None


def _unknown_format(lowered: str) -> str | None:
    """A format asked for that is not one of the export formats ('as parquet'), or None."""
    config = _config()
    rest = _without_paths(lowered)
    named = re.search(r"\b(" + "|".join(map(re.escape, config["unknown_formats"])) + r")\b", rest)
    if named:
        return named.group(1)
    asked = re.search(r"\bas\s+(?:an?\s+)?([a-z][\w-]*)|\bformat\s*[:=]?\s*([a-z][\w-]*)|\b([a-z][\w-]*)\s+format\b", rest)
    word = next(g for g in asked.groups() if g) if asked else None
    return word if word and word not in config["not_formats"] else None


def _read_crawl(text: str, lowered: str, labels: list[str]):
    urls = [u.rstrip(".!?") for u in URL.findall(text)]
    if not urls:
        return _missing("crawl")
    args: dict = {"urls": urls}
    rest = URL.sub(" ", lowered)
    depth = re.search(r"(\d+|" + "|".join(NUMBER_WORDS) + r") (?:levels?|links?|hops?|clicks?)(?: deep)?|depth (?:of )?(\d+)", rest)
    if depth:
        value = depth.group(1) or depth.group(2)
        args["depth"] = int(NUMBER_WORDS.get(value, value))
    images = re.search(r"(\d+) (?:images|photos|pictures|pics|imgs|files)|max(?:imum)? (?:of )?(\d+) (?:images|photos|pictures|pics|imgs)", rest)
    if images:
        args["max_images"] = int(images.group(1) or images.group(2))
    pages = re.search(r"(\d+) pages", rest)
    if pages:
        args["max_pages"] = int(pages.group(1))
    return args


def _sources(text: str) -> list[str]:
    """Paths and URLs in a message, as written; a quoted path stays whole."""
    tokens = TOKEN.findall(text)
    sources = [u.rstrip(".!?") for t in tokens if not QUOTED_SPAN.fullmatch(t) for u in URL.findall(t)]
    for token in tokens:
        if QUOTED_SPAN.fullmatch(token):
            inner = token[1:-1].strip()
            sources += [inner] if _looks_like_path(inner) else []
            continue
        for word in URL.sub(" ", token).split():
            word = word.strip(",;\"'")
            if _looks_like_path(word):
                sources.append(word.rstrip(".!?") if not word.endswith("/") else word)
    return sources


def _read_add_images(text: str, lowered: str, labels: list[str]):
    sources = _sources(text)
    if not sources:
        return None if re.search(r"\b(label|class|category)\b", lowered) else _missing("add_images")
    args: dict = {"sources": sources}
    if re.search(r"(folder|directory|dir|subfolder|sub-folder)s?( names?)? as (the )?(labels?|classes)|labels? from (the )?(folder|director)|(folder|directory) names?|already sorted|by folder", lowered):
        args["labels_from_folders"] = True
    return args


def _read_similar(text: str, lowered: str, labels: list[str]):
    ids = _ids(lowered)
    if ids:
        return {"item_id": ids[0]}
    quoted = _quoted(text)
    if quoted:
        return {"text": quoted[0].lower()}
    match = re.search(r"(?:of|with|showing|for|like)\s+(?:some |a |an |the )?(.+?)\s*\??$", lowered)
    if match and not re.search(r"\b(item|image|photo|picture)\b\s*$", match.group(1)):
        return {"text": match.group(1).strip("?!. ")}
    return _missing("similar")


def _read_correct(text: str, lowered: str, labels: list[str]):
    match = re.search(r"#?\b(\d+)\s*(?:is|should be|must be|=|:)\s*(?:actually |really |labell?ed |called |marked |an? |the )*(['\"\w -]+?)\s*[.!?]*$", lowered) or \
        re.search(r"\b(?:relabel\w*|re-label|change|correct|fix|set|label|mark)\b (?:the label of )?(?:item |image |photo |#)*#?(\d+)\s*(?:as|to|into|=|:)\s*(?:an? |the )?(['\"\w -]+?)\s*[.!?]*$", lowered)
    if not match:
        return None
    label = _clean_label(re.split(r"\s+(?:not|instead of|rather than|-|,)\s+", match.group(2))[0])
    if not label or label.split()[0] in ("wrong", "right", "correct", "fine", "ok", "good", "bad", "not"):
        return None
    _one_correction(lowered)
    return {"item_id": int(match.group(1)), "label": label if label in labels else _singular(label, labels)}


def _read_accept_above(text: str, lowered: str, labels: list[str]):
    probability = _probability(lowered)
    if probability is None:
        return None
    if not 0 < probability <= 1:
        return (f"A probability threshold must be between 0 and 1 (or 1% to 100%); "
                f"{probability:g} is not. For example: approve all windmills above 0.9")
    _one_action(lowered)  # "... and skip the rest" is a second action
    args: dict = {"min_prob": probability}
    label = _known_label_in(lowered, labels)
    if label is None:
        match = re.search(r"\b(?:approve|accept|confirm|ok|okay)\s+(?:(?:all|every|each|the)\s+)?(?:of the\s+)?([a-z][\w -]*?)\s+(?:above|over|at least|with|>=|>|that|which|where|greater|higher|predicted|suggested|labell?ed)", lowered)
        candidate = _clean_label(match.group(1)) if match else ""
        if candidate and not re.fullmatch(rf"(?:all|every|each|the|anything|everything|pending|things|labels|the rest|rest|{NOUNS_AFTER_LABEL})", candidate):
            label = _singular(candidate, labels)
    if label:
        args["label"] = label
    return args


def _read_decide(text: str, lowered: str, labels: list[str]):
    ids = _ids(lowered)
    if not ids:
        return _missing("decide")
    _no_correction_besides(lowered)
    return {"item_ids": ids, "action": _one_action(lowered) or "accept"}


def _read_not_label(text: str, lowered: str, labels: list[str]):
    """'12 is not a windmill': reject that label of #12, when it is one of the labels."""
    match = re.search(r"#?(\d+) (?:is not|isn'?t|is no|'s not) (?:an? |the )?(.+?)\W*$", lowered)
    said = re.search(r"#?\d+ (?:is|'s) (?:an? |the )?(.+?)\W*$", lowered)
    if said and _singular(_clean_label(said.group(1)), labels) in labels:
        return None  # "12 is no defect", where "no defect" is a label: a correction
    label = _singular(_clean_label(match.group(2)), labels)
    if label not in labels:
        return _config()["not_a_label"].format(label=label, labels=", ".join(labels) or "none yet")
    return {"item_ids": [int(match.group(1))], "action": "reject", "label": label}


def _read_undo(text: str, lowered: str, labels: list[str]):
    """Undo takes back one action: a count or an image in the message is asked about."""
    words = "|".join(w for w in NUMBER_WORDS if w != "one")
    count = re.search(rf"\b(?:last|past|previous)\s+(\d+|{words})\b|\b(\d+|{words})\s+(?:times|actions|decisions|steps|things|changes|ones)\b", lowered)
    if count and (count.group(1) or count.group(2)) != "1":
        return _config()["undo_count"].format(times=f" {count.group(1) or count.group(2)} times")
    if re.search(r"\b(all|everything|every\w*|several|few)\b", lowered):
        return _config()["undo_count"].format(times=" once for each action to take back")
    item = re.search(ID, lowered)
    if item and item.group(1) != "1":
        return _config()["undo_item"].format(item=item.group(1))
    return {}


def _read_show_item(text: str, lowered: str, labels: list[str]):
    return _config()["show_item"].format(item=re.search(r"(\d+)\b", lowered).group(1))


def _read_review(text: str, lowered: str, labels: list[str]):
    args: dict = {}
    strategy = _first_match(lowered, STRATEGY_WORDS)
    if strategy:
        args["strategy"] = strategy
    size = re.search(r"\b(\d+)\b", lowered) or re.search(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", lowered)
    if size:
        args["size"] = int(NUMBER_WORDS.get(size.group(1), size.group(1)))
    label = _known_label_in(lowered, labels)
    if label:
        args["label"] = label
    if not args and not re.search(r"\b(review|next|batch|cards?|more|to (look at|check))\b", lowered):
        return None
    return args


def _no_arguments(text: str, lowered: str, labels: list[str]):
    return {}


def _read_start_round(text: str, lowered: str, labels: list[str]):
    """'start a review round of 30 for bo': the size and the reviewer, when said."""
    args: dict = {}
    size = re.search(r"\b(\d+)\b", lowered) or re.search(r"\b(" + "|".join(NUMBER_WORDS) + r")\b", lowered)
    if size:
        args["size"] = int(NUMBER_WORDS.get(size.group(1), size.group(1)))
    reviewer = re.search(r"\b(?:for|by|reviewer:?|reviewed by) ([a-z][\w.-]*)\b", text, re.I)
    if reviewer and reviewer.group(1).lower() not in ("me", "us", "them", "someone", "anyone", "review", "a", "the"):
        args["reviewer"] = reviewer.group(1)
    return args


def _read_train(text: str, lowered: str, labels: list[str]):
    args: dict = {}
    kind = _first_match(lowered, TRAIN_KIND_WORDS)
    if kind:
        args["kind"] = kind
    epochs = re.search(r"\b(\d+) (epochs?|passes|rounds)\b", lowered)
    if epochs:
        args["epochs"] = int(epochs.group(1))
    if _understood_negation("train_model", lowered):  # "... but don't use it yet"
        args["activate"] = False
    return args


def _read_use_model(text: str, lowered: str, labels: list[str]):
    if re.search(r"zero[- ]?shot|base model|no (trained )?model|untrained", lowered):
        return {"version": "zero-shot"}
    found = re.search(r"\b(v\d+(-[a-z-]+)?)\b|\b(?:version|model) #?(\d+)\b", lowered)
    if not found:
        return None
    return {"version": found.group(1) or found.group(3)}


_READERS = {
    "train_model": _read_train,
    "use_model": _read_use_model,
    "model_versions": _no_arguments,
    "undo": _read_undo,
    "not_label": _read_not_label,
    "show_item": _read_show_item,
    "export_dataset": _read_export,
    "crawl": _read_crawl,
    "correct": _read_correct,
    "accept_above": _read_accept_above,
    "add_labels": _read_add_labels,
    "set_labels": _read_set_labels,
    "add_images": _read_add_images,
    "similar": _read_similar,
    "decide": _read_decide,
    "review_batch": _read_review,
    "suggest_labels": _no_arguments,
    "status": _no_arguments,
    "suspect_labels": _no_arguments,
    "start_review_round": _read_start_round,
    "review_round_report": _no_arguments,
}
