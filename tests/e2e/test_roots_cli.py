"""Roots that go missing, removals on purpose, odd names and limits, through the real CLI.

A path that never existed is an error; an indexed folder that cannot be read is offline
(kept); `lookalike remove` and `index --prune` remove on purpose; human labels of removed
images come back with the same content; names that are not UTF-8 are skipped one line
each; the library never indexes itself; a higher --max-pixels retries what it refused.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from PIL import Image

from tests.support.cli import run_cli
from tests.support.data import dev_images


def _photos(base: Path, classes: int = 2, per_class: int = 2) -> Path:
    """base/photos/CLASS/NAME.jpg: a few dev images in class folders."""
    photos = base / "photos"
    for src in dev_images(classes, per_class):
        (photos / src.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, photos / src.parent.name / src.name)
    return photos


def _index(library: Path, *args: str, check: bool = True):
    return run_cli("index", *args, "--library", str(library), "-q", check=check)


def _info(library: Path) -> dict:
    return json.loads(run_cli("info", "--json", "--library", str(library)).stdout)


def _labels(library: Path) -> dict[str, int]:
    doc = json.loads(run_cli("labels", "list", "--json", "--library", str(library)).stdout)
    return {c["label"]: c["human"] for c in doc["labels"] if c["human"]}


def test_a_path_that_does_not_exist_is_an_error_and_changes_nothing(tmp_path):
    photos = _photos(tmp_path, 1, 2)
    library = tmp_path / "library"
    proc = _index(library, str(tmp_path / "Photoz"), check=False)
    assert proc.returncode == 1
    assert "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr
    assert not library.exists()  # no library created for a mistyped path
    _index(library, str(photos))
    proc = _index(library, str(photos), str(tmp_path / "Photoz"), check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert _info(library)["images"] == 2


def test_a_missing_root_is_offline_its_images_and_labels_stay(tmp_path):
    photos = _photos(tmp_path)
    library = tmp_path / "library"
    _index(library, str(photos), "--labels-from-folders")
    before = _labels(library)
    away = tmp_path / "unplugged"
    photos.rename(away)
    proc = run_cli("index", str(photos), "--library", str(library))
    assert "0 removed" in proc.stdout and "4 offline" in proc.stdout
    assert f"offline: {photos}" in proc.stderr
    info = _info(library)
    assert info["images"] == 4 and info["offline"]["images"] == 4
    assert "offline  4 images kept" in run_cli("info", "--library", str(library)).stdout
    assert _labels(library) == before
    away.rename(photos)
    proc = run_cli("index", str(photos), "--library", str(library))
    assert "0 removed" in proc.stdout and "4 unchanged" in proc.stdout
    assert _info(library)["offline"] == {"images": 0, "folders": []}
    assert _labels(library) == before


def test_an_empty_root_is_taken_for_an_unmounted_disk(tmp_path):
    photos = _photos(tmp_path, 1, 2)
    library = tmp_path / "library"
    _index(library, str(photos))
    elsewhere = tmp_path / "elsewhere"
    next(photos.iterdir()).rename(elsewhere)  # the mount point stays, empty
    doc = json.loads(_index(library, str(photos), "--json").stdout)
    assert doc["removed"] == 0 and doc["offline"][0]["images"] == 2
    assert "unmounted" in doc["offline"][0]["reason"]
    doc = json.loads(_index(library, str(photos), "--json", "--prune").stdout)
    assert doc["removed"] == 2 and _info(library)["images"] == 0


def test_a_disk_indexed_by_itself_is_offline_when_its_parent_is_indexed_without_it(tmp_path):
    """/media/USER/disk indexed, unplugged (its mount point gone or left empty), then
    /media/USER indexed: the disk's images are offline, not removed, as when it is
    named itself; a folder that was never a run's own stays a folder whose files were
    deleted; --prune removes."""
    media = tmp_path / "media"
    disk = _photos(media / "disk", 1, 2)  # media/disk/photos/CLASS/...
    home = _photos(media / "home", 1, 2)
    library = tmp_path / "library"
    _index(library, str(disk.parent))
    _index(library, str(media))
    assert _info(library)["images"] == 4
    unplugged = tmp_path / "unplugged"
    disk.parent.rename(unplugged)
    doc = json.loads(_index(library, str(media), "--json").stdout)
    assert doc["removed"] == 0 and doc["offline"][0]["images"] == 2
    assert doc["offline"][0]["path"] == str(disk.parent)
    assert _info(library)["images"] == 4
    (disk.parent).mkdir()  # the mount point is back, empty
    doc = json.loads(_index(library, str(media), "--json").stdout)
    assert doc["removed"] == 0 and "unmounted" in doc["offline"][0]["reason"]
    disk.parent.rmdir()
    unplugged.rename(disk.parent)
    doc = json.loads(_index(library, str(media), "--json").stdout)
    assert doc["removed"] == 0 and doc["offline"] == [] and doc["unchanged"] == 4
    shutil.rmtree(home)  # never a run's own folder: its files are deleted, not offline
    doc = json.loads(_index(library, str(media), "--json").stdout)
    assert doc["removed"] == 2 and doc["offline"] == []
    disk.parent.rename(unplugged)
    doc = json.loads(_index(library, str(media), "--json", "--prune").stdout)
    assert doc["removed"] == 2 and _info(library)["images"] == 0


def test_a_folder_label_a_person_removed_is_not_put_back_by_the_next_run(tmp_path):
    """scripts/serve.sh indexes with --labels-from-folders at every start: a label a
    person removed stays removed (by content, as labels are kept), until a person
    labels the image again; the run counts the labels it gave or changed."""
    photos = _photos(tmp_path, 2, 2)
    library = tmp_path / "library"
    _index(library, str(photos), "--labels-from-folders")
    one = sorted(photos.glob("*/*.jpg"))[0]
    run_cli("labels", "remove", str(one), "--library", str(library))
    again = run_cli("index", str(photos), "--labels-from-folders", "--library", str(library))
    assert ", 0 labelled from folders" in again.stdout  # none given or changed
    assert sum(_labels(library).values()) == 3
    moved = photos / one.parent.name / "renamed.jpg"  # the same content, another name
    one.rename(moved)
    _index(library, str(photos), "--labels-from-folders")
    assert sum(_labels(library).values()) == 3
    run_cli("labels", "set", str(moved), "--as", "mine", "--library", str(library))
    run_cli("labels", "remove", str(moved), "--library", str(library))
    _index(library, str(photos), "--labels-from-folders")
    assert sum(_labels(library).values()) == 3
    run_cli("labels", "set", str(moved), "--as", one.parent.name, "--library", str(library))
    _index(library, str(photos), "--labels-from-folders")
    assert sum(_labels(library).values()) == 4


def test_a_file_removed_from_the_library_comes_back_when_named_itself(tmp_path):
    """Removed on the web (the Duplicates page): indexing its folder leaves it out;
    naming the file itself to `index` brings it back, and its folder's runs after."""
    from lookalike.indexer.store import image_marks
    from lookalike.indexer.store.library import Library

    photos = _photos(tmp_path, 1, 2)
    library = tmp_path / "library"
    _index(library, str(photos))
    gone = sorted(photos.rglob("*.jpg"))[0]
    with Library.open(library, readonly=False) as lib, lib.catalog.transaction() as conn:
        (image_id,) = lib.catalog.ids_of_paths([str(gone)]).values()
        image_marks.record_removed(conn, str(gone))  # as the web's remove does
        lib.catalog.remove_images(conn, [image_id])
    assert json.loads(_index(library, str(photos), "--json").stdout)["added"] == 0
    assert _info(library)["images"] == 1
    assert json.loads(_index(library, str(gone), "--json").stdout)["added"] == 1
    assert json.loads(_index(library, str(photos), "--json").stdout)["unchanged"] == 2


def test_a_missing_sub_tree_behind_a_link_is_offline_deleted_files_are_removed(tmp_path):
    photos = _photos(tmp_path)
    disk = tmp_path / "disk"
    shutil.move(str(next(photos.iterdir())), disk)  # one class folder on another "disk"
    os.symlink(disk, photos / "usb")
    library = tmp_path / "library"
    _index(library, str(photos))
    disk.rename(tmp_path / "disk-away")  # the link now dangles: the disk is unplugged
    deleted = sorted((photos).rglob("*.jpg"))[-1]
    deleted.unlink()  # a file deleted inside a present folder
    doc = json.loads(_index(library, str(photos), "--json").stdout)
    assert doc["removed"] == 1
    assert doc["offline"] == [{"path": str(photos / "usb"), "reason": "dangling symbolic link",
                               "images": 2}]  # fmt: skip
    assert _info(library)["images"] == 3


def test_remove_and_prune_are_on_purpose_and_labels_come_back_by_content(tmp_path):
    photos = _photos(tmp_path)
    library = tmp_path / "library"
    _index(library, str(photos))
    first, second = sorted(p for p in photos.iterdir())
    run_cli("labels", "set", str(first), "--as", "kept", "--library", str(library))
    proc = run_cli("remove", str(first), "--library", str(library))
    assert "removed 2 images" in proc.stdout and "2 human labels kept" in proc.stdout
    assert _info(library)["images"] == 2 and _labels(library) == {}
    assert run_cli("remove", str(first), "--library", str(library), check=False).returncode == 1
    _index(library, str(photos))  # the same content comes back with its labels
    assert _labels(library) == {"kept": 2}
    # an offline root goes with --prune, and its labels come back with it too
    away = tmp_path / "away"
    first.rename(away)
    _index(library, str(first))
    assert _info(library)["images"] == 4
    _index(library, str(first), "--prune")
    assert _info(library)["images"] == 2 and _labels(library) == {}
    away.rename(first)
    _index(library, str(photos))
    assert _info(library)["images"] == 4 and _labels(library) == {"kept": 2}
    assert second.exists()


def test_a_deleted_labelled_file_gets_its_label_back_when_it_returns(tmp_path):
    photos = _photos(tmp_path, 1, 3)
    library = tmp_path / "library"
    _index(library, str(photos))
    target = sorted(photos.rglob("*.jpg"))[0]
    run_cli("labels", "set", str(target), "--as", "mine", "--library", str(library))
    saved = target.read_bytes()
    target.unlink()
    assert "1 removed" in run_cli("index", str(photos), "--library", str(library)).stdout
    (target.parent / "renamed.jpg").write_bytes(saved)
    _index(library, str(photos))
    assert _labels(library) == {"mine": 1}


def test_names_that_are_not_utf8_are_skipped_one_line_each_the_rest_indexed(tmp_path):
    photos = _photos(tmp_path, 1, 3)
    sources = sorted(photos.rglob("*.jpg"))
    raw = os.fsencode(photos)
    os.mkdir(raw + b"/caf\xe9")
    shutil.copy(sources[0], raw + b"/caf\xe9/one.jpg")
    shutil.copy(sources[1], raw + b"/na\xefve.jpg")
    library = tmp_path / "library"
    proc = run_cli("index", str(photos), "--library", str(library), "-q")
    assert "Traceback" not in proc.stderr
    assert f"skipping {photos}/caf\\xe9: the name is not valid UTF-8" in proc.stderr
    assert f"skipping {photos}/na\\xefve.jpg: the name is not valid UTF-8" in proc.stderr
    assert "3 added" in proc.stdout and "2 skipped" in proc.stdout
    run_cli("info", "--library", str(library))


def test_the_library_inside_an_indexed_folder_is_never_scanned(tmp_path):
    photos = _photos(tmp_path, 1, 2)
    library = photos / ".lookalike"
    _index(library, str(photos))
    thumbs = library / "thumbnails"
    thumbs.mkdir(exist_ok=True)
    shutil.copy(dev_images(3, 1)[-1], thumbs / "3-abc-256.jpg")  # a cached thumbnail
    doc = json.loads(_index(library, str(photos), "--json").stdout)
    assert doc["added"] == 0 and doc["skipped"] == []
    assert _info(library)["images"] == 2
    for inside in (library, thumbs):  # named itself: refused, nothing indexed
        proc = _index(library, str(inside), check=False)
        assert proc.returncode == 1 and "the library's own folder" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert _info(library)["images"] == 2


def test_a_higher_max_pixels_retries_what_a_lower_one_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    big = photos / "big.png"
    Image.open(dev_images(1, 1)[0]).convert("RGB").resize((1500, 1000)).save(big)
    library = tmp_path / "library"
    for _ in range(2):
        doc = json.loads(_index(library, str(photos), "--json", "--max-pixels", "1000000").stdout)
        assert doc["added"] == 0 and "too large" in doc["skipped"][0]["reason"]
    doc = json.loads(_index(library, str(photos), "--json", "--max-pixels", "2000000").stdout)
    assert doc["added"] == 1 and doc["skipped"] == []
    query = ("search", str(big), "--library", str(library), "-k", "1")
    proc = run_cli(*query, "--max-pixels", "1000000", check=False)
    assert proc.returncode == 1 and "too large" in proc.stderr
    assert str(big) in run_cli(*query).stdout


def test_run_texts_count_right_and_say_what_failed(tmp_path):
    photos = _photos(tmp_path, 1, 2)
    library = tmp_path / "library"
    _index(library, str(photos))
    src = sorted(photos.rglob("*.jpg"))[0]
    shutil.copy(src, photos / "copy.jpg")
    proc = run_cli("index", str(photos), "--library", str(library))
    assert "1 copy," in proc.stdout and "images/s" not in proc.stdout  # nothing embedded
    (photos / "broken.jpg").write_text("not a picture")
    _index(library, str(photos))
    proc = run_cli(
        "labels", "set", str(photos / "broken.jpg"), "--as", "x", "--library", str(library),
        check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "failed to load (not a readable image)" in proc.stderr
    assert "index them first" not in proc.stderr


def test_labels_list_says_when_a_class_has_only_old_tags(tmp_path):
    photos = _photos(tmp_path, 2, 4)
    library = tmp_path / "library"
    _index(library, str(photos), "--labels-from-folders")
    first = sorted(photos.iterdir())[0]
    for folder in photos.iterdir():  # one image per class left for the tagger
        run_cli("labels", "remove", str(sorted(folder.glob("*.jpg"))[0]), "--library", str(library))
    run_cli("tag", "--library", str(library))
    run_cli("labels", "remove", str(first), "--library", str(library))
    doc = json.loads(run_cli("labels", "list", "--json", "--library", str(library)).stdout)
    counts = {c["label"]: (c["human"], c["predicted"]) for c in doc["labels"]}
    assert counts[first.name][0] == 0 and counts[first.name][1] >= 1
    out = run_cli("labels", "list", "--library", str(library)).stdout
    row = next(line for line in out.splitlines() if line.startswith(first.name))
    assert "no human labels left" in row
