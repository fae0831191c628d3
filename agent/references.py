"""Follow-ups that point at what the conversation showed: 'approve them', 'the first three are
dogs', 'the rest are cats', 'reject the last two', 'not that one'. Read against a Context (the
shown set in order, and which of its items are unchanged since). Anything that cannot be told
for sure is asked back, never guessed. The phrasings and replies live in prompts/router.yaml
(`references`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .conversation import Context

ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
            "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "last": -1}
COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "both": 2}

ALL = (r"(?:all (?:of )?(?:them|these|those)(?: ones)?|(?:them|these|those)(?: ones)? all|them|these(?: ones)?|"
       r"those(?: ones)?|all|everything(?: (?:shown|here))?|the lot|each of them|every one of them|both|"
       r"the ones? you (?:just )?showed(?: me)?)")
REST = r"(?:(?:all )?the (?:rest|others|other ones|remaining(?: ones)?)|(?:all )?the rest of them|the remainder)"
FIRST_N = r"(?:the )?(?:first|top|last) (?P<n>\d+|" + "|".join(COUNTS) + r")(?: ones?| images?| of them)?"
ORDINAL = (r"the (?P<ord>" + "|".join(ORDINALS) + r"|\d+(?:st|nd|rd|th))(?: one| image| picture| photo)?"
           r"|(?:number|no\.?) (?P<num>\d+) (?:in the list|shown|of them)")
THAT = r"(?:that|this|it|that one|this one|that image|this image)"
REF = f"(?:{REST}|{FIRST_N}|{ORDINAL}|{ALL}|{THAT})"


class Ask(Exception):
    """Answer with this text; change nothing."""


@dataclass(frozen=True)
class Reference:
    ids: tuple[int, ...]
    words: str  # the reference as written, for replies


def find(lowered: str) -> re.Match | None:
    """Where a reference stands in a whole-message form; see `forms` in router.yaml."""
    return re.fullmatch(REF, lowered.strip())


def resolve(words: str, context: Context, replies: dict) -> Reference:
    """The ids a reference means, in the shown order; Ask when it cannot be told."""
    words = " ".join(words.split())
    match = re.fullmatch(REF, words)
    if match is None:
        raise Ask(replies["unclear"].format(words=words))
    if re.fullmatch(THAT, words):
        return _single(words, context, replies)
    if not context.shown:
        raise Ask(replies["nothing_shown"].format(words=words))
    shown = list(context.shown)
    if re.fullmatch(REST, words):
        return _rest(words, context, replies)
    if match.group("n"):
        count = int(COUNTS.get(match.group("n"), match.group("n")))
        _in_range(count, shown, words, replies)
        return Reference(tuple(shown[-count:] if "last" in words else shown[:count]), words)
    if match.group("ord") or match.group("num"):
        return Reference((shown[_position(match, shown, words, replies)],), words)
    return Reference(tuple(shown), words)


def _single(words: str, context: Context, replies: dict) -> Reference:
    """'that one' / 'it': the one image shown, or the one image last acted on; else ask."""
    for ids in (context.shown, context.last_items):
        if len(ids) == 1:
            return Reference(tuple(ids), words)
    if context.shown:
        raise Ask(replies["which_one"].format(words=words, count=len(context.shown),
                                              first=context.shown[0]))
    raise Ask(replies["nothing_shown"].format(words=words))


def _rest(words: str, context: Context, replies: dict) -> Reference:
    """The shown images not decided since they were shown (here or in another tab)."""
    if len(context.unchanged) == len(context.shown):
        raise Ask(replies["rest_of_nothing"].format(count=len(context.shown)))
    if not context.unchanged:
        raise Ask(replies["no_rest"].format(count=len(context.shown)))
    return Reference(tuple(context.unchanged), words)


def _position(match: re.Match, shown: list[int], words: str, replies: dict) -> int:
    word = match.group("ord")
    if word is None:
        number = int(match.group("num"))
    else:
        number = ORDINALS.get(word) or int(re.match(r"\d+", word).group(0))
    if number == -1:
        return len(shown) - 1
    _in_range(number, shown, words, replies)
    return number - 1


def _in_range(number: int, shown: list[int], words: str, replies: dict) -> None:
    if not 1 <= number <= len(shown):
        raise Ask(replies["out_of_range"].format(words=words, count=len(shown)))
