"""Bulk edits of human labels: one action on many images, all or nothing, undoable.

An edit labels (or relabels) every image of a selection, removes their labels, or
accepts their predicted tags as labels. It checks every id first (an unknown id:
:class:`UnknownImages` naming it, nothing written), then writes in one
transaction, and returns what the images had before and the labels it set
(:class:`Before`): giving that to :func:`undo` puts their labels and predicted tags
back as they were, for the images whose label is still what the edit set. An image
whose label a person changed since (by hand, another edit, a review) keeps it: undo
never overwrites later work, and says which images it left alone (:class:`Undone`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from lookalike.classifier.labels import UnknownImages, check_label
from lookalike.indexer.errors import LookalikeError
from lookalike.indexer.store.catalog import LabelRow, TagRow
from lookalike.indexer.store.library import Library

# "relabel" is "label" for images that have one: the new label replaces theirs.
ACTIONS = ("label", "relabel", "remove", "accept")


@dataclass(frozen=True)
class Before:
    """The labels and predicted tags of an edit's images before it, and the labels the
    edit left them with (``after``; an id absent from it had none): enough to undo it."""

    ids: list[int]
    labels: dict[int, LabelRow]
    tags: dict[int, TagRow]
    after: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Undone:
    restored: list[int]  # images put back as they were before the edit
    changed_since: list[int]  # images whose label changed after the edit: left alone


@dataclass(frozen=True)
class BulkResult:
    action: str
    changed: int  # images whose label changed
    skipped: list[int]  # accept: images without a predicted label to accept
    before: Before


def apply(
    library: Library, action: str, image_ids: Sequence[int], label: str | None = None
) -> BulkResult:
    """Do ``action`` on every image of ``image_ids`` in one transaction.

    Raises:
        LookalikeError: an unknown action, or label/relabel without a label.
        BadLabel: the label breaks the label rule.
        UnknownImages: an id that is not an image of the library (nothing written).
    """
    if action not in ACTIONS:
        raise LookalikeError(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}")
    if action in ("label", "relabel"):
        if label is None:
            raise LookalikeError(f"{action} needs a label")
        label = check_label(label)
    ids = sorted({int(i) for i in image_ids})
    cat = library.catalog
    known = cat.existing_ids(ids)
    missing = [i for i in ids if i not in known]
    if missing:
        raise UnknownImages([f"image id {i}" for i in missing])
    with cat.transaction() as conn:  # read and write under one lock
        before = Before(ids, cat.label_rows_of(ids), cat.tag_rows_of(ids))
        items, skipped = _planned(action, ids, label, before)
        if action == "remove":
            cat.remove_labels(conn, ids)
        elif items:
            cat.set_labels(conn, items, "manual")
            cat.remove_tags(conn, [i for i, _ in items])  # a human label replaces a tag
        cat.bump_labels_version(conn)
        after = cat.labels_of(ids)
    before = replace(before, after=after)
    changed = sum(
        1
        for i in ids
        if after.get(i) != (before.labels[i]["label"] if i in before.labels else None)
    )
    return BulkResult(action, changed, skipped, before)


def _planned(
    action: str, ids: list[int], label: str | None, before: Before
) -> tuple[list[tuple[int, str]], list[int]]:
    """(image id, label) pairs to write, and the ids skipped."""
    if action == "remove":
        return [], []
    if action == "accept":
        items, skipped = [], []
        for i in ids:
            tag = before.tags.get(i)
            if tag is None or tag["label"] is None:
                skipped.append(i)
            else:
                items.append((i, tag["label"]))
        return items, skipped
    assert label is not None
    return [(i, label) for i in ids], []


def undo(library: Library, before: Before) -> Undone:
    """Put back the labels and tags of an edit's images whose label is still the one
    the edit left (``before.after``); the others changed since and are left alone."""
    cat = library.catalog
    with cat.transaction() as conn:  # read and write under one lock
        now = cat.labels_of(before.ids)
        restored = [i for i in before.ids if now.get(i) == before.after.get(i)]
        changed_since = [i for i in before.ids if now.get(i) != before.after.get(i)]
        keep = set(restored)
        cat.restore_annotations(
            conn,
            restored,
            {i: row for i, row in before.labels.items() if i in keep},
            {i: row for i, row in before.tags.items() if i in keep},
        )
        cat.bump_labels_version(conn)
    return Undone(restored, changed_since)
