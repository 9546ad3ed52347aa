"""Human labels over a real SQLite catalog: CSV import rules, set/remove, counts, export."""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest

from lookalike.classifier.labels import (
    BadLabel,
    BadLabelFile,
    UnknownImages,
    check_label,
    escape_cell,
    export_rows,
    import_csv,
    label_counts,
    remove_labels,
    resolve_paths,
    set_labels,
    unescape_cell,
    write_csv,
)
from lookalike.indexer.store.catalog import Catalog, NewImage, TagExport
from lookalike.indexer.store.library import Library


@pytest.fixture
def library(tmp_path):
    cat = Catalog(tmp_path / "catalog.sqlite")
    folder = tmp_path / "photos"
    items = [
        NewImage(str(folder / sub / f"{i}.jpg"), 1, 1, f"h{sub}{i}", 4, 4, np.ones(4), None)
        for sub in ("cats", "dogs")
        for i in range(3)
    ]
    with cat.transaction() as conn:
        cat.write_images(conn, items)
    with Library(tmp_path, cat) as lib:
        yield lib


def labels_of(cat) -> dict[str, tuple[str, str]]:
    rows = cat.conn.execute(
        "SELECT i.path, l.label, l.origin FROM labels l JOIN images i ON i.id = l.image_id"
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_check_label():
    assert check_label("  golden retriever ") == "golden retriever"
    assert check_label("Forêt-noire (2)") == "Forêt-noire (2)"
    assert check_label("猫") == "猫"
    for bad, reason in [
        ("", "empty"),
        ("   ", "empty"),
        ("cat/dog", "odd characters '/'"),
        ("a\x00b", "odd characters"),
        ("<b>", "odd characters"),
        ("x" * 101, "longer than"),
    ]:
        with pytest.raises(BadLabel, match=reason):
            check_label(bad)


def test_label_rule_allows_every_script_and_says_why_not():
    for good in ["हिन्दी", "தமிழ்", "كَلْب", "(x)", "-2", "Forêt-noire", "日本"]:
        assert check_label(good) == good
    assert check_label("Ｋａｎｇａｒｏｏ １") == "Kangaroo 1"  # NFKC: full-width to ASCII
    for bad, reason in [
        ("--", "at least one letter or digit"),
        ("()", "at least one letter or digit"),
        ("a$x$", "odd characters '$'"),
        ("=cmd|calc!A0", "odd characters '!' '=' '|'"),
    ]:
        with pytest.raises(BadLabel, match=re.escape(reason)):
            check_label(bad)


def test_catalog_keeps_the_first_spelling_and_refuses_bad_labels(library):
    cat = library.catalog
    ids = sorted(cat.existing_ids(range(1, 100)))
    set_labels(library, ids[:1], "Kangaroo")
    set_labels(library, ids[1:3], "KANGAROO")
    assert set(cat.labels_of(ids[:3]).values()) == {"Kangaroo"}
    with pytest.raises(BadLabel), cat.transaction() as conn:  # a cluster name, a folder name
        cat.set_labels(conn, [(ids[3], "ok"), (ids[4], "a$b")], "review")
    assert cat.labels_of(ids[3:5]) == {}


def test_a_removed_images_label_keeps_its_spelling_for_later_labels(library):
    """A label held only by a removed image is still the label: a later label that
    differs in case takes its spelling, and the image indexed again gets its label back
    in the spelling the library has by then."""
    cat = library.catalog
    ids = sorted(cat.existing_ids(range(1, 100)))
    rows = cat.images(ids)
    set_labels(library, ids[:1], "Kangaroo")
    with cat.transaction() as conn:
        cat.remove_images(conn, ids[:1])
    assert cat.label_names() == []
    set_labels(library, ids[1:2], "kangaroo")
    assert cat.label_names() == ["Kangaroo"]
    # A library from before this rule: the kept spelling differs from the live one.
    with cat.transaction() as conn:
        conn.execute("UPDATE kept_labels SET label = 'KANGAROO'")
        back = cat.write_images(conn, [_again(rows[ids[0]])])
    assert cat.labels_of(back) == {back[0]: "Kangaroo"}
    assert cat.label_names() == ["Kangaroo"]


def _again(row) -> NewImage:
    """The image of catalog ``row`` indexed again (the same content at a new path)."""
    return NewImage(row["path"] + ".again.jpg", 1, 1, row["hash"], 4, 4, np.ones(4), None)


def test_csv_cells_are_escaped_exactly():
    for text in ["-2", "=1+1", "+x", "@a", "'quoted", "''", "plain", "'=x"]:
        assert unescape_cell(escape_cell(text)) == text
        assert not escape_cell(text).startswith(("=", "+", "-", "@"))


def test_import_takes_good_rows_and_reports_the_others(library, tmp_path):
    photos = tmp_path / "photos"
    csv_file = write(
        tmp_path / "labels.csv",
        "path,label\n"
        f"{photos}/cats/0.jpg,cat\n"  # line 2: taken
        "photos/cats/1.jpg, cat \n"  # 3: relative to the CSV's folder, label trimmed
        f"{photos}/cats/0.jpg,cat\n"  # 4: duplicate of line 2
        f"{photos}/nowhere.jpg,cat\n"  # 5: unknown path
        f"{photos}/dogs/0.jpg,\n"  # 6: empty label
        f"{photos}/dogs/1.jpg,dog;rm\n"  # 7: odd characters
        f"{photos}/dogs/2.jpg,dog\n"  # 8 and 9: the same path with two labels
        f"{photos}/dogs/2.jpg,wolf\n"
        ",dog\n"  # 10: missing path
        f"{photos}/cats/2.jpg\n",  # 11: no label column
    )
    report = import_csv(library, csv_file)
    assert report.applied
    assert [r.line for r in report.taken] == [2, 3]
    reasons = {r.line: r.reason for r in report.rejected}
    assert reasons[4] == "duplicate of line 2"
    assert "unknown path" in reasons[5]
    assert reasons[6] == "empty label"
    assert "odd characters ';'" in reasons[7]
    assert "different labels on lines 8, 9" in reasons[8] and reasons[8] == reasons[9]
    assert reasons[10] == "missing path"
    assert reasons[11] == "missing label column"
    assert labels_of(library.catalog) == {
        f"{photos}/cats/0.jpg": ("cat", "csv"),
        f"{photos}/cats/1.jpg": ("cat", "csv"),
    }
    assert (report.new, report.changed, report.unchanged) == (2, 0, 0)


def test_strict_import_changes_nothing_when_a_row_is_bad(library, tmp_path):
    photos = tmp_path / "photos"
    csv_file = write(
        tmp_path / "l.csv", f"path,label\n{photos}/cats/0.jpg,cat\n{photos}/x.jpg,cat\n"
    )
    report = import_csv(library, csv_file, strict=True)
    assert not report.applied and len(report.taken) == 1 and len(report.rejected) == 1
    assert labels_of(library.catalog) == {}


@pytest.mark.parametrize(
    "content, reason",
    [
        ("file,label\na.jpg,cat\n", "missing column path"),
        ("path;label\na.jpg;cat\n", "missing column path and label"),
        ("", "empty file"),
    ],
)
def test_bad_files_import_nothing(library, tmp_path, content, reason):
    with pytest.raises(BadLabelFile, match=reason):
        import_csv(library, write(tmp_path / "l.csv", content))
    assert labels_of(library.catalog) == {}


def test_not_utf8_and_missing_files(library, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("path,label\na.jpg,for\xeat\n".encode("latin-1"))
    with pytest.raises(BadLabelFile, match="not UTF-8"):
        import_csv(library, path)
    with pytest.raises(BadLabelFile, match="nothing was imported"):
        import_csv(library, tmp_path / "absent.csv")


def test_bom_header_columns_in_any_order_and_relabel_counts(library, tmp_path):
    photos = tmp_path / "photos"
    set_labels(library, resolve_paths(library, [str(photos / "cats")]), "kitten")
    path = tmp_path / "l.csv"
    path.write_bytes(
        "\ufeffLabel,Path,Note\ncat,photos/cats/0.jpg,x\nkitten,photos/cats/1.jpg,y\n".encode()
    )
    report = import_csv(library, path)
    assert (report.new, report.changed, report.unchanged) == (0, 1, 1)
    assert labels_of(library.catalog)[f"{photos}/cats/0.jpg"] == ("cat", "csv")


def test_set_and_remove_keep_tags_apart(library, tmp_path):
    photos = tmp_path / "photos"
    ids = resolve_paths(library, [str(photos / "dogs")])
    assert len(ids) == 3
    with library.catalog.transaction() as conn:
        conn.executemany(
            "INSERT INTO tags (image_id, label, confidence, head, at) VALUES (?, 'dog', 0.9, "
            "'knn', ?)",
            [(i, time.time()) for i in ids],
        )
    version = library.catalog.labels_version()
    assert set_labels(library, ids[:1], "dog") == 1
    assert library.catalog.labels_version() > version
    counts, unknown = label_counts(library)
    assert counts[0]._asdict() == {"label": "dog", "human": 1, "predicted": 2}
    assert unknown == 0
    assert labels_of(library.catalog)[f"{photos}/dogs/0.jpg"] == ("dog", "manual")
    assert remove_labels(library, ids) == 1
    assert labels_of(library.catalog) == {}


def test_unknown_paths_change_nothing(library, tmp_path):
    with pytest.raises(UnknownImages, match="nothing was changed"):
        resolve_paths(library, [str(tmp_path / "photos/cats/0.jpg"), "/nowhere.jpg"])
    with pytest.raises(UnknownImages):
        set_labels(library, [1, 999], "cat")
    assert labels_of(library.catalog) == {}
    with pytest.raises(BadLabel):
        set_labels(library, [1], "a|b")


def test_export_imports_back(library, tmp_path):
    photos = tmp_path / "photos"
    set_labels(library, resolve_paths(library, [str(photos / "cats")]), "cat", origin="review")
    buf = io.StringIO()
    write_csv(export_rows(library), buf)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "path,label,origin,at" and len(lines) == 4
    assert lines[1].startswith(f"{photos}/cats/0.jpg,cat,review,")
    with library.catalog.transaction() as conn:
        conn.execute("DELETE FROM labels")
    report = import_csv(library, write(tmp_path / "back.csv", buf.getvalue()))
    assert len(report.taken) == 3 and not report.rejected
    assert {v[0] for v in labels_of(library.catalog).values()} == {"cat"}


def test_tag_export_writes_unknown_as_an_empty_label(library, tmp_path):
    photos = tmp_path / "photos"
    ids = resolve_paths(library, [str(photos / "dogs")])
    with library.catalog.transaction() as conn:
        tags = [(ids[0], "dog", 0.91234), (ids[1], None, 0.6)]
        library.catalog.replace_tags(conn, tags, "knn", 0.0)
    rows = export_rows(library, tags=True)
    assert rows == [
        TagExport(f"{photos}/dogs/0.jpg", "dog", 0.91234, "knn", 0.0),
        TagExport(f"{photos}/dogs/1.jpg", None, 0.6, "knn", 0.0),
    ]
    buf = io.StringIO()
    write_csv(rows, buf, tags=True)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "path,label,confidence,head,at"
    assert lines[1].startswith(f"{photos}/dogs/0.jpg,dog,0.9123,knn,")
    assert lines[2].startswith(f"{photos}/dogs/1.jpg,,0.6000,knn,")
