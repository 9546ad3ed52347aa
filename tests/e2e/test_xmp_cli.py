"""`lookalike tags write-xmp` through the real CLI: sidecars next to the photos or under
--into, merged into what other tools wrote, never a photo modified, bad XML left alone."""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET

from tests.support.cli import run_cli
from tests.support.server import copy_slice

RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC = "{http://purl.org/dc/elements/1.1/}"

OTHER_TOOL = """<?xml version="1.0" encoding="UTF-8"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
      xmlns:darktable="http://darktable.sf.net/" darktable:xmp_version="5">
   <darktable:history>
    <rdf:Seq><rdf:li darktable:operation="exposure"/></rdf:Seq>
   </darktable:history>
   <dc:subject><rdf:Bag><rdf:li>holiday</rdf:li></rdf:Bag></dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
"""


def _subjects(path):
    root = ET.parse(path).getroot()
    return [li.text for li in root.iter(f"{RDF}li") if li.text]


def test_write_xmp_merges_and_leaves_photos_and_bad_sidecars_alone(tmp_path):
    photos = tmp_path / "photos"
    images = copy_slice(photos, classes=2, per_class=2)
    lib = tmp_path / "lib"
    run_cli("index", str(photos), "--library", str(lib), "-q", "--labels-from-folders")
    digests = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in images}
    merged, broken = images[0], images[1]
    (merged.parent / f"{merged.name}.xmp").write_text(OTHER_TOOL)
    (broken.parent / f"{broken.name}.xmp").write_text("<x:xmpmeta><unclosed>")

    proc = run_cli("tags", "write-xmp", "--library", str(lib), "--json", check=False)
    assert proc.returncode == 1  # one sidecar was left alone
    doc = json.loads(proc.stdout)
    assert len(doc["created"]) == 2 and len(doc["merged"]) == 1
    assert doc["left_alone"][0]["sidecar"].endswith(f"{broken.name}.xmp")
    assert (broken.parent / f"{broken.name}.xmp").read_text() == "<x:xmpmeta><unclosed>"

    text = (merged.parent / f"{merged.name}.xmp").read_text()
    assert "darktable:history" in text and 'darktable:operation="exposure"' in text
    assert _subjects(merged.parent / f"{merged.name}.xmp") == ["holiday", merged.parent.name]
    assert _subjects(images[2].parent / f"{images[2].name}.xmp") == [images[2].parent.name]
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in images} == digests

    again = json.loads(
        run_cli("tags", "write-xmp", "--library", str(lib), "--json", check=False).stdout
    )
    assert again["created"] == [] and again["merged"] == [] and len(again["unchanged"]) == 3

    into = tmp_path / "sidecars"
    run_cli("tags", "write-xmp", "--library", str(lib), "--into", str(into), "--sidecar",
            "NAME.xmp")  # fmt: skip
    written = sorted(p.relative_to(into).as_posix() for p in into.rglob("*.xmp"))
    assert written == sorted(f"{p.parent.name}/{p.stem}.xmp" for p in images)
