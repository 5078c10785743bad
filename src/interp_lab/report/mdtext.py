"""Untrusted text in Markdown: the helpers every ``.md`` interp-lab writes goes through (report.md,
matches.md, transfer.md, table.md).

Labels, feature ids, model and criterion names, tokens and texts come from files. Here they become inert
inline Markdown that a CommonMark (or GitHub) renderer shows as the same text: no raw HTML, entity, link,
emphasis, heading or extra table cell can come out of them, and control characters are dropped. Plain
text stays readable (``held_out`` is not escaped).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from interp_lab.report import _format as f


def inline(x: Any, start: bool = False, newline: str = " ⏎ ") -> str:
    """``x`` as inert inline Markdown on one line (newlines shown as ``newline``).

    ``start``: the text may begin a line, so block markers (``#``, ``-``, ``1.``, ``>``) are escaped too.
    """
    s = f.printable(x).replace("\n", newline)
    s = re.sub(r"([\\`*\[\]<&~])", r"\\\1", s)
    s = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", s)  # intraword _ never emphasizes
    if not start:
        return s
    s = re.sub(r"^(\s*)([#>+=-])", r"\1\\\2", s)
    return re.sub(r"^(\s*\d+)([.)])", r"\1\\\2", s)


def code(x: Any) -> str:
    """``x`` in a code span, verbatim (a fence longer than any backtick run in it; edge spaces kept)."""
    s = f.printable(x).replace("\n", " ")
    if not s:
        return "` `"
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    if s[0] == "`" or s[-1] == "`" or (s[0] == " " and s[-1] == " " and s.strip()):
        s = f" {s} "  # CommonMark strips one space from each side of such a span
    return f"{fence}{s}{fence}"


def cell(x: Any) -> str:
    """Markdown (from ``inline``, ``code`` or numbers) as one table cell: its pipes escaped (GFM tables
    unescape them, in code spans too), its newlines spaces."""
    return f.printable(x).replace("|", "\\|").replace("\n", " ")


def row(cells: list[Any]) -> str:
    """One GFM table row of Markdown cells."""
    return "| " + " | ".join(cell(c) for c in cells) + " |"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """A GFM table of Markdown cells, and the blank line after it."""
    return [row(header), "|" + "---|" * len(header), *(row(r) for r in rows), ""]


def _punct(ch: str) -> bool:
    return bool(ch) and unicodedata.category(ch)[0] in "PS"


def strong_token(token: Any, before: str = "", after: str = "") -> str:
    """A token in bold between the Markdown ``before`` and ``after`` (only the token's own text returned).

    Its leading and trailing spaces stay outside the markers, where they show (CommonMark does not bold
    ``** is**``); where its punctuation next to a letter would keep the markers from opening or closing
    (``2**.**5``), it is a code span instead, which always renders.
    """
    lead, core, trail = f.split_space(f.printable(token))
    if not core.strip():
        return inline(token, newline="⏎")
    md = inline(core)
    prev = (before + lead)[-1:]
    nxt = (trail + after)[:1]
    opens = not _punct(md[0]) or not prev or prev.isspace() or _punct(prev)
    closes = not _punct(md[-1]) or not nxt or nxt.isspace() or _punct(nxt)
    return lead + (f"**{md}**" if opens and closes else code(core)) + trail
