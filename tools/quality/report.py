"""The quality report a team hands on with the dataset: how right the labels were measured to be.

Measured by the review rounds: each reviewed item's label as it was when the round drew it,
against its settled answer (the label both people gave, or the adjudicator's); and by the audits of
auto-accept: each audited suggestion against what the person made of it (a rejected one is
counted against "(another label)"). From those pairs:
per-class precision, recall and F1 of the labels and their confusion matrix (an item checked in
several rounds counts once, as the newest round found it). Beside them, what the curation did:
suspect labels kept or changed, duplicates merged at ingest or removed.
"""

from __future__ import annotations

from dataclasses import dataclass

from index.store import Store


@dataclass(frozen=True)
class ClassQuality:
    label: str
    support: int  # checked items whose right label is this one
    labelled: int  # checked items that carried this label
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None

    @property
    def recall(self) -> float | None:
        return self.correct / self.support if self.support else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        return None if p is None or r is None or p + r == 0 else 2 * p * r / (p + r)


@dataclass(frozen=True)
class QualityReport:
    confirmed: int  # confirmed items in the dataset
    checked: int  # of them, items whose right label a review round settled
    accuracy: float | None
    per_class: tuple[ClassQuality, ...]
    labels: tuple[str, ...]  # the confusion matrix's rows and columns
    confusion: tuple[tuple[int, ...], ...]  # [given label][right label]
    rounds: int  # review rounds
    audits: int  # auto-accept audits
    suspects_kept: int  # flagged as likely wrong, looked at, kept
    counts: dict  # Store.quality_counts(): duplicates merged / removed, labels changed after confirmation


def labelled_pairs(store: Store) -> dict[int, tuple[str, str]]:
    """item id -> (the label it carried, its right label) from every review round, newest last."""
    from tools.rounds import truths

    pairs: dict[int, tuple[str, str]] = {}
    for round_ in store.rounds():
        given = {item.item_id: item.first_label for item in store.round_items(round_.id)}
        for item_id, right in truths(store, round_.id).items():
            pairs[item_id] = (given[item_id], right)
    return pairs


def quality_report(store: Store) -> QualityReport:
    pairs = list(labelled_pairs(store).values())
    names = store.label_set().names
    labels = tuple(names + sorted({l for pair in pairs for l in pair} - set(names)))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for given, right in pairs:
        matrix[index[given]][index[right]] += 1
    per_class = tuple(ClassQuality(label, sum(row[i] for row in matrix), sum(matrix[i]), matrix[i][i])
                      for i, label in enumerate(labels))
    correct = sum(given == right for given, right in pairs)
    return QualityReport(
        confirmed=len(store.confirmed_labels()), checked=len(pairs),
        accuracy=correct / len(pairs) if pairs else None, per_class=per_class, labels=labels,
        confusion=tuple(tuple(row) for row in matrix), rounds=sum(r.kind == "review" for r in store.rounds()),
        audits=sum(r.kind == "audit" for r in store.rounds()),
        suspects_kept=len(store.kept_labels()), counts=store.quality_counts())


def to_json(report: QualityReport) -> dict:
    return {"confirmed": report.confirmed, "checked": report.checked, "accuracy": report.accuracy,
            "rounds": report.rounds, "audits": report.audits,
            "per_class": [{"label": c.label, "support": c.support, "labelled": c.labelled, "correct": c.correct,
                           "precision": c.precision, "recall": c.recall, "f1": c.f1} for c in report.per_class],
            "confusion": {"labels": list(report.labels), "rows_given_columns_right": [list(r) for r in report.confusion]},
            "suspects_kept": report.suspects_kept, **report.counts}


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def format_markdown(report: QualityReport) -> str:
    counts = report.counts
    lines = ["# Label quality report", ""]
    if report.checked:
        lines += [f"{report.checked} item(s) checked, in {report.rounds} review round(s) (a second person "
                  f"labelled them blind; disagreements were adjudicated) and {report.audits} auto-accept audit(s) "
                  f"(a person checked suggestions before the rest was accepted unseen); {report.confirmed} items "
                  f"are confirmed. {_share(report.accuracy)} of the checked labels were right.", ""]
    else:
        lines += [f"None of the {report.confirmed} confirmed items has been checked in a review round or an "
                  f"audit yet, so the labels' precision and recall are not measured (labelchat round start "
                  f"--size 30).", ""]
    lines += ["## Per class", "", "| label | checked | precision | recall | F1 |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {c.label} | {c.support} | {_share(c.precision)} | {_share(c.recall)} | {_share(c.f1)} |"
              for c in report.per_class]
    lines += ["", "## Confusion matrix (rows: the label given, columns: the right label)", "",
              "| given \\ right | " + " | ".join(report.labels) + " |",
              "|---|" + "---:|" * len(report.labels)]
    lines += [f"| {label} | " + " | ".join(str(n) for n in row) + " |"
              for label, row in zip(report.labels, report.confusion)]
    lines += ["", "## Curation", "",
              f"- suspect labels looked at and kept: {report.suspects_kept}",
              f"- confirmed labels changed later (suspects and adjudications included): "
              f"{counts['labels_changed_after_confirmation']}",
              f"- exact duplicates merged at ingest: {counts['exact_duplicates_merged']}",
              f"- near-duplicate pairs found at ingest: {counts['near_duplicate_pairs']}, of which removed "
              f"(one side rejected): {counts['near_duplicates_removed']}"]
    return "\n".join(lines)
