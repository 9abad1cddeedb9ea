"""Parse untrusted XML (annotation files) with the standard library, refusing any DTD.

Annotation files come from labelling tools and from the internet. A DTD is what XML attacks need
(entity expansion, "billion laughs"; external entities reading local files or URLs), and no
annotation format edgecv reads uses one, so a file that declares a DTD is rejected outright: the
rule defusedxml applies with `forbid_dtd=True`. The standard library's expat is used directly
(defusedxml's last release is from 2021, and it would be one more dependency on every device
install) and builds an ordinary `xml.etree.ElementTree` tree.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat


class UnsafeXML(ValueError):
    """The file declares a DTD or an entity, which edgecv never expands."""


def _refuse(what: str):
    def handler(*_args):
        raise UnsafeXML(f"declares {what}, which annotation files never need (refused: it is how XML entity "
                        "attacks work)")

    return handler


def parse_bytes(data: bytes) -> ET.Element:
    """The root element of an XML document; UnsafeXML for a DTD or entity declaration,
    ValueError (with expat's line and column) for malformed XML."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse("a DTD (<!DOCTYPE ...>)")
    parser.EntityDeclHandler = _refuse("an entity (<!ENTITY ...>)")
    parser.UnparsedEntityDeclHandler = _refuse("an unparsed entity")
    parser.ExternalEntityRefHandler = _refuse("an external entity reference")
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        raise ValueError(f"not well-formed XML ({expat.ErrorString(e.code)} at line {e.lineno}, column {e.offset})") \
            from None
    return builder.close()


def parse_file(path: Path) -> ET.Element:
    return parse_bytes(Path(path).read_bytes())
