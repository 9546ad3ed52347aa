"""Bulk label edits and their undo on a real library: undo leaves later hand edits alone."""

from __future__ import annotations

import pytest

from lookalike.classifier import bulk_edit, labels
from lookalike.indexer.store.library import Library
from tests.support.webapp import build_library, copy_library


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("bulklib"))


@pytest.fixture()
def library(source, tmp_path):
    with Library.open(copy_library(source, tmp_path / "library"), readonly=False) as lib:
        yield lib


def annotations(lib: Library) -> tuple[dict, dict]:
    ids = lib.catalog.existing_ids(range(1, 10_000))
    return lib.catalog.label_rows_of(ids), lib.catalog.tag_rows_of(ids)


def test_undo_restores_everything_when_nothing_changed_since(library):
    before = annotations(library)
    ids = sorted(library.catalog.existing_ids(range(1, 10_000)))
    result = bulk_edit.apply(library, "label", ids, "Thing")
    assert result.before.after == dict.fromkeys(ids, "Thing")
    done = bulk_edit.undo(library, result.before)
    assert done.restored == ids and done.changed_since == []
    assert annotations(library) == before


def test_undo_leaves_images_changed_since_as_they_are(library):
    before_labels, before_tags = annotations(library)
    ids = sorted(library.catalog.existing_ids(range(1, 10_000)))
    result = bulk_edit.apply(library, "label", ids, "Thing")
    relabelled, removed, same = ids[0], ids[1], ids[2]
    labels.set_labels(library, [relabelled], "Other", "manual")  # a person, since
    labels.remove_labels(library, [removed])
    labels.set_labels(library, [same], "Thing", "manual")  # set again to what it is
    done = bulk_edit.undo(library, result.before)
    assert done.changed_since == [relabelled, removed]
    assert done.restored == [i for i in ids if i not in (relabelled, removed)]
    now_labels, now_tags = annotations(library)
    assert now_labels[relabelled]["label"] == "Other"
    assert removed not in now_labels
    for i in done.restored:
        assert now_labels.get(i) == before_labels.get(i)
        assert now_tags.get(i) == before_tags.get(i)


def test_undo_of_a_remove_keeps_a_label_given_since(library):
    labelled = sorted(library.catalog.labels())[:3]
    before = library.catalog.label_rows_of(labelled)
    result = bulk_edit.apply(library, "remove", labelled)
    assert result.before.after == {}
    labels.set_labels(library, [labelled[0]], "Fresh", "manual")
    done = bulk_edit.undo(library, result.before)
    assert done.changed_since == [labelled[0]] and done.restored == labelled[1:]
    now = library.catalog.label_rows_of(labelled)
    assert now[labelled[0]]["label"] == "Fresh"
    assert all(now[i] == before[i] for i in labelled[1:])
