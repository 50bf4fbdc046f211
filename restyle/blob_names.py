"""Blob names come from users: check them before they become paths, URLs or log lines."""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 1024  # Azure's limit on a blob name
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class UnsafeBlobName(ValueError):
    """A blob name that could escape its container or folder, or is not a usable name."""


def safe_blob_name(name: str) -> str:
    """The name exactly as given, or UnsafeBlobName naming the problem.

    Checked in Unicode NFC form, but returned unchanged: storage compares names byte for byte, so
    a decomposed (NFD) name, as macOS writes file names, must reach storage as uploaded.
    Spaces and non-ASCII letters are fine; `..`, `.` and empty segments, absolute paths,
    backslashes and control characters are not.
    """
    if not isinstance(name, str) or not name:
        raise UnsafeBlobName("blob name is empty")
    normalized = unicodedata.normalize("NFC", name)
    if len(normalized) > MAX_NAME_LENGTH:
        raise UnsafeBlobName(f"blob name longer than {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in normalized):
        raise UnsafeBlobName(f"blob name contains control characters: {normalized!r}")
    if is_url(normalized):
        raise UnsafeBlobName(f"{normalized!r} is a URL; URLs are never fetched: upload the file and name the blob")
    if "\\" in normalized:
        raise UnsafeBlobName(f"blob name contains a backslash: {normalized!r}")
    if normalized.startswith("/"):
        raise UnsafeBlobName(f"blob name is an absolute path: {normalized!r}")
    parts = normalized.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeBlobName(f"blob name has an empty, '.' or '..' segment: {normalized!r}")
    if normalized != normalized.strip():
        raise UnsafeBlobName(f"blob name starts or ends with white space: {normalized!r}")
    return name


def is_url(text: str) -> bool:
    """`scheme://...`: users naming a web address where a blob name belongs, refused rather than fetched."""
    return isinstance(text, str) and bool(_URL.match(text.strip()))
