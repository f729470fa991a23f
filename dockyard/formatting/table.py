"""Docker's table output: its tabwriter (elastic tabstops) and the header row.

Docker writes ``table`` output through ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``: a column is
as wide as its widest cell plus 3 spaces, at least 10; the last cell of a line is not padded; a line
without a tab ends the current block of columns.  Cell widths are terminal widths (East Asian wide
characters count 2, combining marks 0), as Docker's fork measures them with go-runewidth.
"""

from __future__ import annotations

import re
import unicodedata

MINWIDTH = 10
PADDING = 3


def text_width(s: str) -> int:
    if s.isascii():
        return len(s)
    w = 0
    for ch in s:
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def tabwrite(text: str, minwidth: int = MINWIDTH, padding: int = PADDING) -> str:
    """Align tab-terminated cells in columns exactly as Go's (and Docker's) tabwriter does."""
    out: list[str] = []
    # Cells of each buffered line; the last line is the one still being written.
    lines: list[list[str]] = [[]]
    pos = 0
    for m in re.finditer("[\t\v\n]", text):
        lines[-1].append(text[pos:m.start()])
        pos = m.end()
        if m.group() == "\n":
            ncells = len(lines[-1])
            lines.append([])
            # A line of one cell cannot affect the columns of the lines after it: flush.
            if ncells == 1:
                _format(lines, 0, len(lines), [], out, minwidth, padding)
                lines = [[]]
    if pos < len(text):
        lines[-1].append(text[pos:])
    _format(lines, 0, len(lines), [], out, minwidth, padding)
    return "".join(out)


def _format(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str],
            minwidth: int, padding: int) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # A cell exists in this column: the lines from here on that have one form a block.
        _write_lines(lines, line0, this, widths, out)
        line0 = this
        width = minwidth
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, text_width(lines[this][column]) + padding)
            this += 1
        widths.append(width)
        _format(lines, line0, this, widths, out, minwidth, padding)
        widths.pop()
        line0 = this
    _write_lines(lines, line0, line1, widths, out)


def _write_lines(lines: list[list[str]], line0: int, line1: int, widths: list[int], out: list[str]) -> None:
    for i in range(line0, line1):
        for j, c in enumerate(lines[i]):
            out.append(c)
            if j < len(widths):
                out.append(" " * (widths[j] - text_width(c)))
        if i + 1 < len(lines):
            out.append("\n")


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+|[^A-Za-z0-9]+")


def default_header(name: str) -> str:
    """A column title from a field name, as Podman derives them: split at case changes, upper-cased.

    ``RunningFor`` -> ``RUNNING FOR``, ``ID`` -> ``ID``, ``IPAddress`` -> ``IP ADDRESS``.
    """
    parts = [p for p in _CAMEL.findall(name) if p.strip()]
    return " ".join(parts).upper() if parts else name.upper()


class HeaderText(str):
    """A header cell: a field looked up on it titles the column after that field, so a nested
    ``{{.Config.Image}}`` is headed IMAGE rather than failing."""


class HeaderContext(dict):
    """What the header row is rendered against: field name -> title, like Docker's SubHeaderContext."""

    def __missing__(self, key: str) -> HeaderText:
        return HeaderText(default_header(key))

    def Label(self, name: str) -> str:  # noqa: N802 - Go method name, called from templates
        # Docker titles a label column after the label key's last dotted part.
        return name.split(".")[-1].replace("-", " ").replace("_", " ")
