"""XMP sidecars through the classifier API: hierarchical labels and idempotent merges."""

from __future__ import annotations

from lookalike.classifier.xmp import keywords_of, sidecar_path, write_sidecars


def test_a_b_labels_go_to_the_hierarchical_subject_and_reruns_add_nothing(tmp_path):
    photo = tmp_path / "p.jpg"
    photo.write_bytes(b"not read")
    assert keywords_of("animals/cats") == ("cats", "animals|cats")
    assert keywords_of("cat") == ("cat", None)
    report = write_sidecars({str(photo): ["animals/cats", "cat"]})
    sidecar = sidecar_path(str(photo))
    assert report.created == [str(sidecar)] and sidecar.name == "p.jpg.xmp"
    text = sidecar.read_text()
    assert "<lr:hierarchicalSubject>" in text and "<rdf:li>animals|cats</rdf:li>" in text
    assert text.count("<rdf:li>cat") == 2  # cats and cat in dc:subject
    again = write_sidecars({str(photo): ["cat"]})
    assert again.unchanged == [str(sidecar)] and sidecar.read_text() == text
    assert photo.read_bytes() == b"not read"
    assert sidecar_path(str(photo), "NAME.xmp").name == "p.xmp"
