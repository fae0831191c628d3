"""Router coverage: the share of messages the offline router maps to exactly the right tool call.

    python bench/router.py [CASES.yaml ...]     (default: bench/router_cases.yaml, bench/router_cases_holdout.yaml)

Each case is {message, tool (or null), args, labels (optional)}. A case is
right when the tool and every argument match (for `help`, when the router
answers with its help). A call has an invented argument when one of its
values cannot be read in the message (labels and texts must appear in it,
up to a plural ending; numbers must appear, as given or as a percentage).
Goal: >= 90% right and 0 invented. Ends with one JSON line.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.router import route  # noqa: E402


def invented(message: str, args: dict) -> list[str]:
    """Argument values that are nowhere in the message."""
    text = message.lower()
    numbers = {float(n) for n in re.findall(r"\d*\.?\d+", text)}
    words = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10, "twenty": 20}
    numbers |= {float(v) for w, v in words.items() if re.search(rf"\b{w}\b", text)}
    found = []
    for key, value in args.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool) or key in ("strategy", "action", "format", "include", "kind"):
                continue
            if isinstance(v, (int, float)):
                if float(v) not in numbers and round(float(v) * 100, 6) not in numbers:
                    found.append(f"{key}={v}")
            elif not any(form in text for form in _forms(str(v).lower())):
                found.append(f"{key}={v}")
    return found


def _forms(word: str) -> set[str]:
    """A value and its plural forms, as a person may have written it."""
    forms = {word, word + "s", word + "es"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    return forms


def score(cases: list[dict], default_labels: list[str]) -> dict:
    right, wrong, made_up = 0, [], []
    for case in cases:
        labels = case.get("labels") if case.get("labels") is not None else default_labels
        result = route(case["message"], labels)
        expected = case.get("args") or {}
        if case["tool"] == "help":
            ok = result.tool is None and "Things you can say" in result.reply
        else:
            ok = result.tool == case["tool"] and (case["tool"] is None or result.args == expected)
        right += ok
        if not ok:
            wrong.append({"message": case["message"], "expected": [case["tool"], expected], "got": [result.tool, result.args]})
        if result.tool and invented(case["message"], result.args):
            made_up.append({"message": case["message"], "invented": invented(case["message"], result.args)})
    return {"cases": len(cases), "right": right, "share": round(right / len(cases), 4),
            "invented": len(made_up), "wrong": wrong, "invented_cases": made_up}


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or [
        p for p in (ROOT / "bench" / "router_cases.yaml", ROOT / "bench" / "router_cases_holdout.yaml") if p.exists()
    ]
    figures = {}
    for path in paths:
        cases = yaml.safe_load(path.read_text())
        # Cases without their own label set get every label the file mentions, as a
        # project would know its labels by the time people refer to them.
        default = sorted({l for c in cases for l in (c.get("args") or {}).get("labels", [])} |
                         {c["args"]["label"] for c in cases if (c.get("args") or {}).get("label")})
        result = score(cases, default)
        figures[path.name] = {k: result[k] for k in ("cases", "right", "share", "invented")}
        print(f"{path.name}: {result['right']}/{result['cases']} right ({result['share']:.1%}), "
              f"{result['invented']} with invented arguments", file=sys.stderr)
        for miss in result["wrong"]:
            print(f"  wrong: {miss['message']!r}: expected {miss['expected']}, got {miss['got']}", file=sys.stderr)
        for miss in result["invented_cases"]:
            print(f"  invented: {miss['message']!r}: {miss['invented']}", file=sys.stderr)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
