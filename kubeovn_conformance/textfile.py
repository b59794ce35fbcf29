"""Reading a text file so that bad input is one line naming the file: a binary or non-UTF-8
file says which file and where, instead of a bare "'utf-8' codec can't decode byte 0xff"."""

from __future__ import annotations

from pathlib import Path


class NotTextError(ValueError):
    """The file is not UTF-8 text. The message names the file and the offending byte."""


def read_text(path: str | Path) -> str:
    """Path(path).read_text(encoding="utf-8"); OSError passes through unchanged."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise NotTextError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at line {line}, "
                           f"offset {e.start})") from None
