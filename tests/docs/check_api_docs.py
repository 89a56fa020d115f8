#!/usr/bin/env python3
"""Every public function appears in the Doxygen API reference (its XML output)
with every parameter described, its statuses (a @return naming DAT_OK and the
errors, for functions returning dat_status) and, for functions that create or
destroy objects, the ownership rule (who frees what, with which function).

    check_api_docs.py DOXYGEN_XML_DIR
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bindings"))
import c_api  # noqa: E402


def text(node) -> str:
    return " ".join("".join(node.itertext()).split()) if node is not None else ""


def documented(xml_dir: Path) -> dict[str, ET.Element]:
    out = {}
    for f in xml_dir.glob("*_8h.xml"):
        for m in ET.parse(f).getroot().iter("memberdef"):
            if m.get("kind") == "function":
                out[m.findtext("name")] = m
    return out


def problems(fn: c_api.Function, m) -> list[str]:
    if m is None:
        return ["missing from the reference"]
    found = []
    desc = m.find("detaileddescription")
    described = {text(n) for n in desc.iter("parametername")}
    for _, name in fn.params:
        if name not in described:
            found.append(f"parameter {name} not described")
    returns = " ".join(text(s) for s in desc.iter("simplesect") if s.get("kind") == "return")
    if fn.ret == "dat_status":
        if "DAT_OK" not in returns:
            found.append("@return does not name DAT_OK")
        if not re.search(r"DAT_ERR_\w+|as dat_\w+", returns):
            found.append("@return names no error status")
    elif fn.ret != "void" and not returns:
        found.append("no @return")
    whole = text(desc) + " " + text(m.find("briefdescription"))
    if re.search(r"_(create|open|finish)\w*$|_create_", fn.name) and \
            re.search(r"\*\*", " ".join(t for t, _ in fn.params)):
        if not re.search(r"owned by the caller", whole) or "destroy" not in whole:
            found.append("does not say who owns the new object and what frees it")
    if fn.name.endswith("_destroy") and "no-op" not in whole:
        found.append("does not say that NULL is a no-op")
    return found


def main() -> int:
    xml_dir = Path(sys.argv[1])
    functions, _, _ = c_api.parse()
    docs = documented(xml_dir)
    bad = 0
    for name, fn in sorted(functions.items()):
        for p in problems(fn, docs.get(name)):
            print(f"{fn.header}: {name}: {p}")
            bad += 1
    print(f"{len(functions)} functions checked, {bad} problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
