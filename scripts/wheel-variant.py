#!/usr/bin/env python3
"""Turn a wheel built from bindings/python into the wheel of another distribution (a variant).

maturin takes the distribution name and dependencies from the one pyproject.toml next to the
crate, and has no option to change them per build. The variants of tensorbridge are the same
project built with other cargo features, published under their own names (like onnxruntime and
onnxruntime-gpu): this script renames the distribution, adds the variant's requirements and
files, and rewrites RECORD (sha256 and size of every file), as `wheel pack` would.

usage: wheel-variant.py WHEEL --name NAME [--summary TEXT] [--requires REQ]...
                        [--add PATH_IN_WHEEL=FILE]... -o OUT_DIR
    -> OUT_DIR/<name>-<version>-<tags>.whl (the input's tags), printed on stdout
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import sys
import zipfile


def _normalized(name: str) -> str:
    """A distribution name as wheel file and .dist-info names spell it (PEP 427/503)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _metadata(text: str, name: str, summary: str | None, requires: list[str]) -> str:
    lines = text.split("\n")
    head_end = (
        lines.index("") if "" in lines else len(lines)
    )  # headers, then the description
    head, body = lines[:head_end], lines[head_end:]
    out: list[str] = []
    for line in head:
        if line.startswith("Name: "):
            line = f"Name: {name}"
        elif line.startswith("Summary: ") and summary:
            line = f"Summary: {summary}"
        out.append(line)
    # After the last unconditional Requires-Dist (before the extras' ones), else at the end.
    plain = [
        i
        for i, ln in enumerate(out)
        if ln.startswith("Requires-Dist:") and ";" not in ln
    ]
    at = plain[-1] + 1 if plain else len(out)
    out[at:at] = [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(out + body)


def make_variant(
    wheel: str,
    name: str,
    out_dir: str,
    summary: str | None = None,
    requires: list[str] | None = None,
    add: dict[str, str] | None = None,
) -> str:
    """Writes the variant of ``wheel`` into ``out_dir`` and returns its path."""
    base = os.path.basename(wheel)
    parts = base[: -len(".whl")].split("-")
    if len(parts) != 5:
        raise SystemExit(
            f"{base}: expected NAME-VERSION-PY-ABI-PLATFORM.whl (no build tag)"
        )
    old, version, tags = parts[0], parts[1], "-".join(parts[2:])
    new = _normalized(name)
    old_info, new_info = f"{old}-{version}.dist-info/", f"{new}-{version}.dist-info/"
    files: list[tuple[zipfile.ZipInfo, bytes]] = []
    with zipfile.ZipFile(wheel) as zin:
        for info in zin.infolist():
            data = zin.read(info)
            path = info.filename
            if path.startswith(old_info):
                path = new_info + path[len(old_info) :]
            if path == new_info + "METADATA":
                data = _metadata(
                    data.decode("utf-8"), name, summary, requires or []
                ).encode()
            if path == new_info + "RECORD":
                continue
            out = zipfile.ZipInfo(path, date_time=info.date_time)
            out.external_attr = info.external_attr
            out.compress_type = zipfile.ZIP_DEFLATED
            files.append((out, data))
    if new_info + "METADATA" not in {i.filename for i, _ in files}:
        raise SystemExit(f"{base}: no {old_info}METADATA")
    for path, src in (add or {}).items():
        with open(src, "rb") as f:
            data = f.read()
        out = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
        out.external_attr = (0o100755 if os.access(src, os.X_OK) else 0o100644) << 16
        out.compress_type = zipfile.ZIP_DEFLATED
        # Before the .dist-info entries, which conventionally come last.
        first_info = next(
            i for i, (zi, _) in enumerate(files) if zi.filename.startswith(new_info)
        )
        files.insert(first_info, (out, data))
    record = "".join(f"{zi.filename},{_record_hash(d)},{len(d)}\n" for zi, d in files)
    record += f"{new_info}RECORD,,\n"
    rec_info = zipfile.ZipInfo(new_info + "RECORD", date_time=(1980, 1, 1, 0, 0, 0))
    rec_info.external_attr = 0o100644 << 16
    rec_info.compress_type = zipfile.ZIP_DEFLATED
    files.append((rec_info, record.encode()))

    os.makedirs(out_dir, exist_ok=True)
    dest = os.path.join(out_dir, f"{new}-{version}-{tags}.whl")
    tmp = dest + ".part"
    with zipfile.ZipFile(tmp, "w") as zout:
        for zi, data in files:
            zout.writestr(zi, data)
    os.replace(tmp, dest)
    return dest


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("wheel")
    p.add_argument("--name", required=True)
    p.add_argument("--summary")
    p.add_argument("--requires", action="append", default=[])
    p.add_argument("--add", action="append", default=[], metavar="PATH_IN_WHEEL=FILE")
    p.add_argument("-o", "--out-dir", required=True)
    a = p.parse_args(argv)
    add = dict(item.split("=", 1) for item in a.add)
    print(make_variant(a.wheel, a.name, a.out_dir, a.summary, a.requires, add))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
