"""Formatting shared by every renderer (report.md, report.html, matches, transfer, the console):
safe accessors, numbers, and plain text of values.

Everything here is pure and deterministic, and tolerates missing or mistyped fields:
a report written by an older version, a feature dump or a hand-edited file renders.
What the renderers say about a report's cards and their blocks is in ``report._card_text``.
"""

from __future__ import annotations

import math
import re
from typing import Any

MISSING = "—"


# --- safe access -------------------------------------------------------------------------------


def d(x: Any) -> dict[str, Any]:
    """``x`` if it is a dict, else an empty one."""
    return x if isinstance(x, dict) else {}


def lst(x: Any) -> list[Any]:
    """``x`` if it is a list, else an empty one."""
    return x if isinstance(x, list) else []


def fnum(x: Any) -> float | None:
    """``x`` as a finite-or-not float, or None when it is not a number."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def pair(x: Any) -> tuple[float, float] | None:
    """A two-number interval, or None."""
    if isinstance(x, (list, tuple)) and len(x) == 2:
        lo, hi = fnum(x[0]), fnum(x[1])
        if lo is not None and hi is not None:
            return lo, hi
    return None


def text(x: Any) -> str:
    return "" if x is None else str(x)


# C0 controls but tab and newline (ESC starts terminal escapes), DEL, C1 (CSI), and the bidirectional
# embeddings / overrides / isolates that reorder what a reader sees
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(x: Any) -> str:
    """``x`` as text without control characters: what every renderer (Markdown, HTML, terminal) shows of a
    string that came from a file."""
    return CONTROL.sub("", text(x))


# --- numbers -----------------------------------------------------------------------------------


def num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits; integers with thousands separators."""
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if not isinstance(x, float):
        # not a number where one belongs (a hand-edited file): its letters, digits and plain punctuation
        return re.sub(r"[^\w .,:;+%/()-]", "", printable(x))[:40] or "?"
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    a = abs(x)
    if a < 1e-3 or a >= 1e6:
        mant, exp = f"{x:.{max(digits - 1, 0)}e}".split("e")
        return f"{mant}e{int(exp)}"
    decimals = max(0, digits - 1 - math.floor(math.log10(a)))
    return f"{x:,.{decimals}f}"


def signed(x: Any, digits: int = 3) -> str:
    s = num(x, digits)
    return "+" + s if fnum(x) is not None and fnum(x) > 0 and not s.startswith("+") else s


def pval(p: Any) -> str:
    """p and q values: plain when not small, scientific below 0.001."""
    v = fnum(p)
    if v is None:
        return MISSING
    if v <= 1e-300:
        return "≤ 1e-300"  # the floor the ranker reports (or an underflow in older reports)
    if v < 1e-3:
        mant, exp = f"{v:.2e}".split("e")
        return f"{mant}e{int(exp)}"
    return num(v)


def short(x: Any) -> str:
    """Settings and scores as written (0.4, 1, 0.7345), not padded to significant digits."""
    v = fnum(x)
    return num(x) if v is None or isinstance(x, int) else f"{v:.4g}"


def pct(x: Any) -> str:
    v = fnum(x)
    return MISSING if v is None else f"{100 * v:.1f}%"


def ci(x: Any, digits: int = 3) -> str:
    p = pair(x)
    return f"[{num(p[0], digits)}, {num(p[1], digits)}]" if p else ""


def with_ci(value: Any, interval: Any, digits: int = 3) -> str:
    if fnum(value) is None:
        return MISSING
    return (signed(value, digits) + " " + ci(interval, digits)).strip()


def ratio(x: Any) -> str:
    v = fnum(x)
    return MISSING if v is None else f"{num(v)}×"


# --- plain text of values ----------------------------------------------------------------------


def short_hash(h: Any, n: int = 12) -> str:
    h = text(h)
    return h[:n] + "…" if len(h) > n else (h or MISSING)


def params(p: Any, limit: int = 12) -> str:
    items = list(d(p).items())
    out = ", ".join(f"{k}={v}" for k, v in items[:limit])
    return out + (" …" if len(items) > limit else "")


def brief(val: Any, depth: int = 0) -> str:
    """A fingerprint value in a few words, never dumped: a number as it is, a vector by its length and
    norm, a list of words by its first few, a mapping by its first fields (their values briefed), deeper
    ones by their size."""
    if val is None or isinstance(val, (bool, int, float)):
        return num(val)
    if isinstance(val, str):
        return clip(printable(val), 80)
    if isinstance(val, list):
        values = [fnum(v) for v in val]
        if val and all(v is not None for v in values):
            return f"{len(val):,} numbers, norm {num(math.sqrt(sum(v * v for v in values)))}"
        if val and all(isinstance(v, str) for v in val):
            shown = ", ".join(repr(clip(printable(v), 30)) for v in val[:3])
            return f"{len(val):,} items ({shown}{', …' if len(val) > 3 else ''})"
        return f"{len(val):,} items"
    if isinstance(val, dict):
        if depth > 0 or not val:
            return f"{len(val):,} fields"
        items = list(val.items())
        return ", ".join(f"{k} {brief(v, depth + 1)}" for k, v in items[:4]) + (
            f", … ({len(items):,} fields)" if len(items) > 4 else "")
    return clip(printable(val), 80)


def summarize(val: Any, show: int = 4) -> tuple[str, list[tuple[str, Any]]]:
    """A fingerprint entry as a one-line description and a few of its items, never the whole of it (all of
    it is in report.json): a mapping or list of numbers by its size and range with its ``show`` largest
    entries by magnitude; anything else briefed (``brief``)."""
    if isinstance(val, dict):
        items = [(str(k), v) for k, v in val.items()]
    elif isinstance(val, list) and all(fnum(v) is not None for v in val):
        items = [(f"#{i}", v) for i, v in enumerate(val)]
    else:
        return brief(val), []
    values = [fnum(v) for _, v in items]
    if not items or any(v is None for v in values):
        return brief(val), []
    desc = f"{len(items):,} {'entry' if len(items) == 1 else 'entries'}"
    if len(values) > 1:
        desc += f", from {num(min(values))} to {num(max(values))}, {sum(v != 0 for v in values):,} non-zero"
    order = sorted(range(len(items)), key=lambda i: (-abs(values[i]), i))
    return desc, [items[i] for i in order[:show]]


def split_space(token: Any) -> tuple[str, str, str]:
    """A token as (leading whitespace, core, trailing whitespace); newlines shown as ⏎."""
    tok = text(token).replace("\r", "").replace("\n", "⏎")
    core = tok.strip()
    if not core:
        return "", tok, ""
    lead = tok[: len(tok) - len(tok.lstrip())]
    return lead, core, tok[len(lead) + len(core):]


def clip(s: str, n: int = 600) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def ranges(ints: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    out: list[str] = []
    for i in sorted(set(ints)):
        if out and out[-1][1] == i - 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)


def hooks_text(hooks: list[Any]) -> str:
    """Hook names grouped by their per-layer pattern: ``blocks.{0-29}.mlp.hook_post, ...``."""
    groups: dict[str, list[int]] = {}
    other: list[str] = []
    for h in map(str, hooks):
        m = re.fullmatch(r"blocks\.(\d+)\.(.+)", h)
        if m:
            groups.setdefault(m.group(2), []).append(int(m.group(1)))
        else:
            other.append(h)
    parts = [f"blocks.{i[0]}.{k}" if len(i) == 1 else f"blocks.{{{ranges(i)}}}.{k}" for k, i in groups.items()]
    return ", ".join(parts + other)


def listing(key: str, v: Any) -> str:
    """A provenance value as text (hook lists grouped by layer)."""
    if not isinstance(v, list):
        return text(v)
    return hooks_text(v) if key == "hooks" else ", ".join(map(str, v))
