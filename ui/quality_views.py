"""The Dashboard's health section: counts of each finding and thumbnails of examples (pure HTML)."""

from __future__ import annotations

from html import escape
from typing import Callable

from tools.wording import counted

EXAMPLES = 6  # thumbnails per finding


def health_html(report, image_url: Callable[[int], str], examples: int = EXAMPLES) -> str:
    """The report as HTML: one line of counts, then per finding a row of captioned thumbnails."""
    counts = " · ".join(f"<b>{n}</b> {escape(k.replace('_', ' '))}" for k, n in report.counts.items())
    rows = [("Duplicates", [(d.item_id, d.other_id, _pair_caption(d)) for d in report.duplicates]),
            ("Outliers: no label fits them well", [(f.item_id, None, f.detail) for f in report.outliers]),
            ("Too small or nearly uniform", [(f.item_id, None, f"{f.reason}: {f.detail}") for f in report.poor_images])]
    parts = [f"<p>Health of {counted(report.items, 'image')}: {counts}</p>"]
    for title, found in rows:
        if not found:
            continue
        cells = "".join(_cell(image_url, a, b, caption) for a, b, caption in found[:examples])
        parts.append(f"<h4>{escape(title)} ({len(found)})</h4><div style='display:flex;flex-wrap:wrap;gap:8px'>{cells}</div>")
    if len(parts) > 1:
        parts.append("<p>Act on an item from the Review tab or the chat: reject it, or give it another label "
                     "('12 is a windmill').</p>")
    return "".join(parts)


def _pair_caption(pair) -> str:
    how = f"{pair.closeness:.0f} bits apart" if pair.kind == "perceptual" else f"cosine {pair.closeness:.3f}"
    return f"#{pair.item_id} {pair.labels[0] or '-'} / #{pair.other_id} {pair.labels[1] or '-'} ({how})"


def _cell(image_url, item_id: int, other_id: int | None, caption: str) -> str:
    images = "".join(f"<img src='{escape(image_url(i))}' alt='item {i}' style='height:72px'>"
                     for i in (item_id, other_id) if i is not None)
    return (f"<figure style='margin:0;max-width:170px'>{images}"
            f"<figcaption style='font-size:12px'>#{item_id}: {escape(caption)}</figcaption></figure>")
