"""Keywords in XMP sidecars, which digiKam, darktable, Lightroom and immich read.

Each image gets its keywords (human labels, and/or predicted tags above a
confidence) in ``dc:subject``; a label ``a/b`` also goes into
``lr:hierarchicalSubject`` as ``a|b`` (``dc:subject`` gets its last part, as
digiKam and Lightroom write them). The sidecar is ``NAME.EXT.xmp`` next to the
photo (digiKam, darktable) or ``NAME.xmp`` (Lightroom), or the same names under
another folder. Image files are never written.

An existing sidecar is merged, not replaced: its other properties, its other
keywords and its namespace prefixes stay; keywords already there are not added
twice, so a rerun changes nothing. A sidecar that is not valid XML is left alone
and reported.
"""

from __future__ import annotations

import io
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

X = "adobe:ns:meta/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
LR = "http://ns.adobe.com/lightroom/1.0/"
PREFIXES = {"x": X, "rdf": RDF, "dc": DC, "lr": LR}
SIDECARS = ("NAME.EXT.xmp", "NAME.xmp")
PACKET_BEGIN = '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
PACKET_END = '\n<?xpacket end="w"?>\n'


@dataclass
class XmpReport:
    """What ``tags write-xmp`` wrote."""

    created: list[str] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # an existing sidecar, keywords added
    unchanged: list[str] = field(default_factory=list)  # had every keyword already
    left_alone: list[tuple[str, str]] = field(default_factory=list)  # (sidecar, why)

    def as_dict(self) -> dict:
        return {
            "created": self.created,
            "merged": self.merged,
            "unchanged": self.unchanged,
            "left_alone": [{"sidecar": p, "reason": r} for p, r in self.left_alone],
        }


def sidecar_path(image: str, style: str = SIDECARS[0], into: Path | None = None, base=None) -> Path:
    """Where ``image``'s sidecar goes (``into``: under that folder, mirroring the
    image's path below ``base``)."""
    path = Path(image)
    name = f"{path.name}.xmp" if style == SIDECARS[0] else f"{path.stem}.xmp"
    if into is None:
        return path.with_name(name)
    rel = Path(os.path.relpath(path.parent, base)) if base else Path()
    return into / rel / name


def keywords_of(label: str) -> tuple[str, str | None]:
    """(the dc:subject keyword, the lr:hierarchicalSubject entry or None) of a label."""
    parts = [p.strip() for p in label.split("/") if p.strip()]
    if len(parts) > 1:
        return parts[-1], "|".join(parts)
    return label, None


def write_sidecars(
    keywords: dict[str, list[str]], style: str = SIDECARS[0], into: Path | None = None
) -> XmpReport:
    """Write or merge the sidecar of each image path in ``keywords`` (its labels)."""
    report = XmpReport()
    base = os.path.commonpath([os.path.dirname(p) for p in keywords]) if keywords else None
    for image, labels in sorted(keywords.items()):
        target = sidecar_path(image, style, into, base)
        try:
            _merge(target, labels, report)
        except ET.ParseError as e:
            report.left_alone.append((str(target), f"not valid XML ({e})"))
    return report


def _merge(target: Path, labels: Iterable[str], report: XmpReport) -> None:
    existed = target.exists()
    root = _parse(target.read_bytes()) if existed else _new_root()
    description = _description(root)
    added = 0
    for label in labels:
        subject, hierarchy = keywords_of(label)
        added += _add_to_bag(description, f"{{{DC}}}subject", subject)
        if hierarchy is not None:
            added += _add_to_bag(description, f"{{{LR}}}hierarchicalSubject", hierarchy)
    if existed and not added:
        report.unchanged.append(str(target))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _write(target, root)
    (report.merged if existed else report.created).append(str(target))


def _parse(data: bytes) -> ET.Element:
    """The sidecar's element tree, with its own namespace prefixes kept for writing."""
    for _event, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
        if prefix and not (prefix.startswith("ns") and prefix[2:].isdigit()):
            ET.register_namespace(prefix, uri)
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    return ET.fromstring(data, parser=parser)


def _new_root() -> ET.Element:
    root = ET.Element(f"{{{X}}}xmpmeta")
    ET.SubElement(root, f"{{{RDF}}}RDF")
    return root


def _description(root: ET.Element) -> ET.Element:
    """The first rdf:Description (made when there is none)."""
    rdf = root if root.tag == f"{{{RDF}}}RDF" else root.find(f".//{{{RDF}}}RDF")
    if rdf is None:
        rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    found = rdf.find(f"{{{RDF}}}Description")
    if found is None:
        found = ET.SubElement(rdf, f"{{{RDF}}}Description", {f"{{{RDF}}}about": ""})
    return found


def _add_to_bag(description: ET.Element, tag: str, value: str) -> int:
    """Add ``value`` to the bag of property ``tag``; 1 if added, 0 if it was there."""
    prop = description.find(tag)
    if prop is None:
        prop = ET.SubElement(description, tag)
    bag = prop.find(f"{{{RDF}}}Bag")
    if bag is None:
        bag = ET.SubElement(prop, f"{{{RDF}}}Bag")
    if any((li.text or "") == value for li in bag.findall(f"{{{RDF}}}li")):
        return 0
    ET.SubElement(bag, f"{{{RDF}}}li").text = value
    return 1


def _write(target: Path, root: ET.Element) -> None:
    for prefix, uri in PREFIXES.items():
        ET.register_namespace(prefix, uri)
    ET.indent(root, space=" ")
    text = PACKET_BEGIN + ET.tostring(root, encoding="unicode") + PACKET_END
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
