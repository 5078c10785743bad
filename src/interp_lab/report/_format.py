"""Number and text formatting shared by report.md and report.html."""

from __future__ import annotations

from typing import Any


def num(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` significant digits (``-`` for missing)."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0:
            return "0"
        a = abs(x)
        if a >= 1e5 or a < 1e-3:
            return f"{x:.{max(digits - 1, 1)}e}"
        if a >= 100:
            return f"{x:,.1f}"
        if a >= 1:
            return f"{x:.{digits}g}"
        return f"{x:.{digits}f}".rstrip("0").rstrip(".")
    return str(x)


def signed(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    s = num(x, digits)
    return s if s.startswith("-") or s == "0" else "+" + s


def pval(p: Any) -> str:
    if p is None:
        return "-"
    p = float(p)
    if p <= 1e-300:
        return "< 1e-300"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def ci(pair: Any, digits: int = 3) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return "-"
    return f"[{num(pair[0], digits)}, {num(pair[1], digits)}]"


def with_ci(value: Any, pair: Any, digits: int = 3) -> str:
    return f"{signed(value, digits)} {ci(pair, digits)}" if value is not None else "-"


def heldout(card: dict[str, Any]) -> dict[str, Any]:
    return ((card.get("association") or {}).get("heldout")) or {}


def discovery(card: dict[str, Any]) -> dict[str, Any]:
    return ((card.get("association") or {}).get("discovery")) or {}


def statistic(card: dict[str, Any]) -> str:
    return (card.get("association") or {}).get("statistic") or "auroc"


def causal_verdict(card: dict[str, Any]) -> str:
    kinds = card.get("causal") or {}
    if not kinds:
        return "-"
    parts = []
    for key, k in kinds.items():
        parts.append(f"{key} {signed(k.get('mean_effect'))} ({'strong' if k.get('strong_causal') else 'not strong'})")
    return "; ".join(parts)


def context_tokens(example: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in example.get("context") or [] if isinstance(t, dict)]
