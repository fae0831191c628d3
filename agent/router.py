"""The offline brain's understanding: a message -> one tool call, or a reply.

Deterministic and instant. The phrasings live in prompts/router.yaml; this
module reads the arguments out of the message and never invents one: when a
required argument is not in the message, the reply asks for it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache

import prompts

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


@lru_cache(maxsize=1)
def _config() -> dict:
    return prompts.load_yaml("router.yaml")


def route(message: str, labels: list[str] | None = None) -> Route:
    """What the person asks for, given the project's label set (to read labels in messages)."""
    labels = labels or []
    text = _repair_typos(" ".join(message.strip().split()))
    lowered = text.lower()
    if not lowered or len(lowered) > 2000:
        return Route(None, reply=_help() if not lowered else "That message is too long for me; say one thing at a time.")
    for intent in _config()["intents"]:
        if not re.search(intent["pattern"], lowered):
            continue
        reader = _READERS.get(intent["tool"])
        result = reader(text, lowered, labels) if reader else {}
        if result is None:
            continue  # the pattern matched, but this is not really that request
        if isinstance(result, str):
            return Route(None, reply=result)
        if intent["tool"] == "help":
            return Route(None, reply=_help())
        return Route(intent["tool"], result)
    return Route(None, reply=_config()["unknown"].format(message=message.strip()[:200]) + "\n\n" + _help())


def _help() -> str:
    return _config()["help"].strip()


def _missing(tool: str) -> str:
    return _config()["missing"][tool]


@lru_cache(maxsize=1)
def _vocabulary() -> list[str]:
    return list(_config()["vocabulary"])


def _repair_typos(text: str) -> str:
    """'exprot' -> 'export': words within a small edit of a keyword become that keyword."""
    words = text.split(" ")
    vocabulary = _vocabulary()
    for i, word in enumerate(words):
        core = word.strip(".,!?;:").lower()
        if len(core) < 5 or core in vocabulary or URL.match(word) or "/" in word or "-" in core or core.isdigit():
            continue
        match = difflib.get_close_matches(core, vocabulary, n=1, cutoff=0.8)
        if match and match[0].rstrip("sd") == core.rstrip("sd"):  # an inflection, not a typo
            continue
        if match:
            words[i] = word.lower().replace(core, match[0])
    return " ".join(words)


# -- argument readers: each returns args, a reply string (missing argument), or None -------


def _numbers(text: str) -> list[float]:
    values = [float(n) for n in re.findall(r"(?<![\w.#/])(\d+(?:\.\d+)?)(?![\w/])", text)]
    return values


def _ids(lowered: str) -> list[int]:
    body = URL.sub(" ", lowered)
    return [int(n) for n in re.findall(r"(?<![\w.])#?(\d+)\b(?!\s*%|\.\d)", body)]


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
    (r"\b(only|just) (the )?confirmed|confirmed (labels )?only", "confirmed"),
    (r"suggest|predict|includ\w* (the )?(guess|prediction)|everything", "suggested"),
)
ACTION_WORDS = ((r"\b(reject|decline|refuse|no to|wrong)\b", "reject"), (r"\bskip\b", "skip"))
STRATEGY_WORDS = (
    (r"unsure|uncertain|least (sure|certain|confident)|hardest|doubt|not sure|borderline|confus", "uncertain"),
    (r"most (sure|certain|confident)|surest|easiest|confident|obvious", "confident"),
    (r"\brandom", "random"),
    (r"balanced|mix|each (label|class)|every (label|class)", "balanced"),
)
TRAIN_KIND_WORDS = ((r"fine[- ]?tun|whole (image )?model|full", "finetune"), (r"\bprobe\b|linear", "probe"))


def _first_match(lowered: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((value for pattern, value in table if re.search(pattern, lowered)), None)


def _read_export(text: str, lowered: str, labels: list[str]):
    args: dict = {}
    for word, fmt in FORMATS.items():
        if re.search(rf"\b{re.escape(word)}\b", lowered):
            args["format"] = fmt
            break
    include = _first_match(lowered, INCLUDE_WORDS)
    if include:
        args["include"] = include
    path = re.search(r"\b(?:to|into|in|at|under)\s+(?:the )?(?:folder |directory |dir )?"
                     r"([A-Za-z]:[\\/][^\s,;]*|[~./][^\s,;]*|[\w.-]+/[^\s,;]*)", text, re.I)
    if not path:
        bare = re.search(r"\b(?:to|into)\s+(?:the )?(?:folder |directory |dir )?([\w.-]+)\b", text, re.I)
        words = set(" ".join(FORMATS).split()) | {"a", "an", "the", "my", "it", "them", "disk", "file", "folder", "format", "me"}
        path = bare if bare and bare.group(1).lower() not in words else None
    if not path:
        return _missing("export_dataset")
    return {"out_dir": path.group(1).rstrip(".!?"), **args}


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
    """Paths and URLs in a message, as written."""
    sources = [u.rstrip(".!?") for u in URL.findall(text)]
    for token in URL.sub(" ", text).split():
        token = token.strip(",;\"'")
        if re.match(r"^([~./]|[A-Za-z]:\\)", token) or "/" in token or re.search(r"\.(zip|txt|csv|tsv|jpe?g|png|webp|gif)$", token, re.I):
            sources.append(token.rstrip(".!?") if not token.endswith("/") else token)
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
    return {"item_id": int(match.group(1)), "label": label if label in labels else _singular(label, labels)}


def _read_accept_above(text: str, lowered: str, labels: list[str]):
    probability = _probability(lowered)
    if probability is None:
        return None
    if not 0 < probability <= 1:
        return (f"A probability threshold must be between 0 and 1 (or 1% to 100%); "
                f"{probability:g} is not. For example: approve all windmills above 0.9")
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
    return {"item_ids": ids, "action": _first_match(lowered, ACTION_WORDS) or "accept"}


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


def _read_train(text: str, lowered: str, labels: list[str]):
    args: dict = {}
    kind = _first_match(lowered, TRAIN_KIND_WORDS)
    if kind:
        args["kind"] = kind
    epochs = re.search(r"\b(\d+) (epochs?|passes|rounds)\b", lowered)
    if epochs:
        args["epochs"] = int(epochs.group(1))
    if re.search(r"\b(don'?t|do not|without) (use|using|activat|switch)", lowered):
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
    "undo": _no_arguments,
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
}
