"""/api/images/<id>/file, thumbnails and previews serve only the regular file indexed
(device, inode, size, mtime): a file swapped since indexing is refused, never followed."""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from tests.support.cli import run_cli
from tests.support.data import dev_images
from tests.support.webapp import make_app

KINDS = ["file", "thumbnail", "preview"]


@pytest.fixture()
def library(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for src in dev_images(1, 3):
        shutil.copy(src, photos / src.name)
    root = tmp_path / "library"
    run_cli("index", str(photos), "--library", str(root))
    return root


def first_image(client) -> tuple[int, str]:
    card = client.get("/api/images?limit=1").get_json()["images"][0]
    return card["id"], card["path"]


def same_size_secret(tmp_path, size: int):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"root:x:0:0:secret\n".ljust(size, b"#"))
    return secret


def assert_refused(client, image_id):
    for kind in KINDS:
        response = client.get(f"/api/images/{image_id}/{kind}?v=x")
        assert response.status_code in (404, 409), kind
        assert "as indexed" in response.get_json()["error"]
        assert b"secret" not in response.data


def test_the_indexed_file_is_served(library):
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    response = client.get(f"/api/images/{image_id}/file")
    assert response.status_code == 200
    with open(path, "rb") as f:
        assert response.data == f.read()
    for kind in KINDS[1:]:
        assert client.get(f"/api/images/{image_id}/{kind}").status_code == 200


def test_a_symlink_that_replaced_the_file_is_refused(library, tmp_path):
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    st = os.stat(path)
    secret = same_size_secret(tmp_path, st.st_size)
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the same mtime
    os.unlink(path)
    os.symlink(secret, path)
    assert_refused(client, image_id)


def test_another_file_renamed_over_it_with_the_same_size_and_mtime_is_refused(library, tmp_path):
    """Size and mtime match; only the inode tells it is not the file indexed."""
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    st = os.stat(path)
    secret = same_size_secret(tmp_path, st.st_size)
    os.utime(secret, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(secret, path)
    assert_refused(client, image_id)


def test_a_fifo_swapped_in_is_refused_without_hanging(library):
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    os.unlink(path)
    os.mkfifo(path)
    assert_refused(client, image_id)


def test_a_touched_file_is_refused_until_indexed_again(library):
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))
    assert_refused(client, image_id)
    run_cli("index", os.path.dirname(path), "--library", str(library))
    assert client.get(f"/api/images/{image_id}/file").status_code == 200


def test_rows_indexed_before_identities_are_checked_by_size_and_mtime(library, tmp_path):
    with sqlite3.connect(library / "catalog.sqlite") as conn:
        conn.execute("UPDATE images SET dev = NULL, ino = NULL")
    client = make_app(library).test_client()
    image_id, path = first_image(client)
    assert client.get(f"/api/images/{image_id}/file").status_code == 200
    st = os.stat(path)
    secret = same_size_secret(tmp_path, st.st_size)
    os.unlink(path)
    os.symlink(secret, path)
    assert_refused(client, image_id)
