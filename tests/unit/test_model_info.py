"""Model descriptions: what a library records about its model, and its capabilities."""

from __future__ import annotations

import json

import pytest

from lookalike.indexer.models.protocol import ModelInfo
from lookalike.indexer.store.library import Library


@pytest.mark.parametrize(
    ("name", "text_encoder", "class_head"),
    [
        ("efficientnet-lite0", False, True),
        ("openclip:ViT-B-32:laion2b_s34b_b79k", True, False),
        ("some-other-model", False, False),
    ],
)
def test_a_description_recorded_before_capabilities_gets_its_familys(
    tmp_path, name, text_encoder, class_head
):
    old = {"name": name, "dim": 8, "preprocessing": "p", "weights_hash": "0"}
    with Library.create(tmp_path / "lib", ModelInfo(**old)) as lib:
        with lib.catalog.transaction() as conn:  # as an older version wrote it
            lib.catalog.set_meta("model", json.dumps(old | {"descriptor": "d", "extra": {}}), conn)
    with Library.open(tmp_path / "lib") as lib:
        info = lib.model_info()
    assert info is not None
    assert (info.text_encoder, info.class_head) == (text_encoder, class_head)


def test_recorded_capabilities_are_kept_and_not_part_of_the_identity(tmp_path):
    info = ModelInfo("m", 8, "p", "0", text_encoder=True)
    with Library.create(tmp_path / "lib", info) as lib:
        assert lib.model_info() == info
    assert info.key() == ModelInfo("m", 8, "p", "0").key()
