"""Terminal rendering of API results (rich tables on stdout).

Every string that came from a file or the user (labels, ids, model and criterion names, paths, tokens)
goes through ``_esc``: rich markup in it is shown, not interpreted, and control characters (terminal
escapes) are dropped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from interp_lab.report import _card_text as ct
from interp_lab.report import _format as fmt

console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fmt(x: Any, nd: int = 3) -> str:
    """``nd`` significant digits (a change of 3e-6 stays visible), "-" for nothing."""
    return "-" if x is None else fmt.num(x, nd)


def heldout_effect(card: dict[str, Any]) -> str:
    h = ((card.get("association") or {}).get("heldout")) or {}
    return fmt.with_ci(h["effect"], h.get("effect_ci")) if "effect" in h else "-"


def _table(title: str, columns: Any, **column: Any) -> Table:
    """A table whose title and column names (which may come from files) are shown as written."""
    t = Table(title=_esc(title), title_justify="left")
    for col in columns:
        t.add_column(_esc(col), **column)
    return t


def _row(t: Table, *cells: Any) -> None:
    t.add_row(*(_esc(c) for c in cells))


def cards_table(report: dict[str, Any]) -> None:
    for w in report.get("warnings", []):
        err.print(f"[bold yellow]warning:[/] {_esc(w)}")
    title = f"{report.get('criterion')}  ·  model {report.get('model') or '-'}  ·  backend {report.get('backend')}"
    if report.get("synthetic"):
        title += "  ·  SYNTHETIC"
    t = _table(title, ("#", "feature", "tier", "direction", "importance", "held-out effect [95% CI]", "causal",
                       "label"), overflow="fold")
    for c in report["cards"]:
        flags = f" ({', '.join(map(str, c['flags']))})" if c.get("flags") else ""
        _row(t, c["rank"], c["feature_id"], f"{c['evidence_tier']}{flags}", c.get("direction") or "-",
             _fmt(c.get("importance")), heldout_effect(c), ct.causal_verdict(c), c.get("label") or "")
    console.print(t)
    s = report.get("summary", {})
    if "features_tested" in s:
        console.print(_esc(f"{s['features_tested']} features tested, {s['significant_on_discovery']} significant on "
                           f"discovery (q < 0.05); tiers: " + ", ".join(f"{k} {v}" for k, v in s["tiers"].items())))


def matches_table(doc: dict[str, Any], shown: int = 20) -> None:
    for n in doc.get("notes", []):
        note(n)
    parts = list(doc["method"]["weights"])
    t = _table(f"one-to-one matches  ·  {', '.join(f'{p} {w:.2f}' for p, w in doc['method']['weights'].items())}",
               ("left", "right", "score", "p", *parts, "labels"), overflow="fold")
    kept = sorted((m for m in doc["matches"] if m["one_to_one"]), key=lambda m: -m["score"])
    for m in kept[:shown]:
        labels = " / ".join(str(x or "-") for x in (m.get("left_label"), m.get("right_label")))
        _row(t, m["left_feature"], m["right_feature"], _fmt(m["score"]), f"{m['p_value']:.3g}",
             *(_fmt(m["components"][p]) for p in parts), labels if labels != "- / -" else "")
    console.print(t)
    s = doc["summary"]
    console.print(f"{s['left_features']:,} x {s['right_features']:,} features; {s['pairs']:,} candidate pairs, "
                  f"{s['one_to_one_pairs']:,} one-to-one, {s['pairs_p_below_alpha']:,} with p below alpha")


def say(message: Any) -> None:
    """A progress or status message on stderr (messages name files, models and paths: shown as written)."""
    err.print(_esc(message, "\n"))


def note(message: str) -> None:
    err.print(f"[bold yellow]note:[/] {_esc(message)}")


def document(doc: dict[str, Any], paths: dict[str, Path], json_out: bool, table: Any) -> None:
    """A written document (report, matches): its JSON bytes on stdout with ``--json``, else ``table(doc)`` and
    the files written."""
    if json_out:
        from interp_lab.report.write import report_bytes

        sys.stdout.buffer.write(report_bytes(doc))
        return
    table(doc)
    written(paths)


def written(paths: dict[str, Path]) -> None:
    for p in paths.values():
        console.print(f"wrote {_esc(p)}")


def run_summary(result: Any) -> None:
    for step in result.steps:
        console.print(_esc(f"step {step['name']}: {step['status']}"
                           + (f" ({step['seconds']:.2f} s)" if step.get("seconds") is not None else "")))
    console.print(f"manifest: {_esc(result.manifest_path)}")


def demo(result: Any) -> None:
    cards_table(result.report)
    console.print()
    console.print("[bold]Planted truth vs what the ranker reported (synthetic data):[/]")
    for line in result.checks:
        console.print(f"  {_esc(line)}")
    written(result.paths)


def models_table(rows: list[dict[str, Any]]) -> None:
    t = _table("registered models", ("name", "family", "layers", "d_model", "cached", "license", "description"))
    for r in rows:
        _row(t, r["name"], r["family"], r["n_layers"], r["d_model"], "yes" if r["cached"] else "no", r["license"],
             r["description"])
    console.print(t)
    console.print("Any Hugging Face id or local model directory works too (needs network for ids).")


def lens_table(table: dict[str, Any]) -> None:
    t = _table(f"{table['lens']} lens · {table['prompt']!r} · {table['metric']} of "
               f"{', '.join(repr(x) for x in table['metric_tokens'])} at the last token",
               ("layer", "top tokens at the last position", "KL to final", table["metric"]))
    for r in table["rows"]:
        tops = "  ".join(f"{tok!r} {p:.2f}" for tok, p in r["top_tokens"])
        _row(t, r["layer"], tops, f"{r['kl_to_final']:.3f}", f"{r['metric'][-1]:.4f}")
    console.print(t)
    console.print(_esc("final: " + "  ".join(f"{tok!r} {p:.2f}" for tok, p in table["final_top"])))


def lens_kl(res: dict[int, dict[str, float]]) -> None:
    t = _table("mean KL(final || lens) in nats, per layer", ("layer", "logit lens", "tuned lens"))
    for layer, v in res.items():
        _row(t, layer, f"{v['logit_lens']:.3f}", f"{v['tuned_lens']:.3f}" if "tuned_lens" in v else "-")
    console.print(t)


def store_list(rows: list[dict[str, Any]]) -> None:
    t = _table(f"{len(rows)} stores", ("path", "name", "model", "dataset", "tokens", "hooks", "complete", "tags",
                                       "created"), overflow="fold")
    for r in rows:
        _row(t, r["path"], r["name"], r["model"], r["dataset"], f"{r['tokens']:,}", r["hooks"],
             "yes" if r["complete"] else "no", ", ".join(map(str, r["tags"])), r["created"])
    console.print(t)


def contexts(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        text = "".join((f"[bold reverse]{_esc(c['token'])}[/]" if c["focus"] else _esc(c["token"]))
                       for c in r["context"])
        act = f"{r['activation']:.3f}  " if "activation" in r else ""
        where = _esc(f"row {r['row']} doc {r['doc_id']} pos {r['position']}")
        console.print(f"{act}[dim]{where}[/]  {text}")


def _esc(s: Any, newline: str = "⏎") -> str:
    """``s`` shown as written: rich markup escaped, control characters dropped, newlines as ``newline``."""
    from rich.markup import escape

    return escape(fmt.printable(s)).replace("\n", newline)


def doctor(info: Any) -> None:
    """``interp-lab doctor``'s findings (an ``api.doctor.DoctorResult``)."""
    console.print(_esc(f"interp-lab {info.version} on Python {info.python} ({info.platform})"))
    t = _table("extras", ("extra", "status", "packages"))
    for name, ex in info.extras.items():
        _row(t, name, "installed" if ex.ok else "missing", ", ".join(
            f"{p} {v or 'missing'}" for p, v in ex.packages.items()))
    console.print(t)
    console.print(_esc(f"cache: {info.cache.path} ({info.cache.bytes / 1e6:.1f} MB)"))
    for line in info.notes:
        console.print(f"note: {_esc(line)}")


def providers(res: Any) -> None:
    """``interp-lab providers``' table (an ``api.backends.ProvidersResult``)."""
    t = _table("providers (--backend NAME)", ("name", "status", "evidence", "registered by"))
    for p in res.providers:
        status = ("planned: " + p.planned if p.planned else "ready" if p.ready else "needs " + ", ".join(p.missing))
        _row(t, p.name, status, p.source, p.registered_by)
    console.print(t)


class StageProgress:
    """A transient progress line on stderr on a terminal: stage, bar or spinner, counts, rate. Elsewhere
    (logs, CI), with ``log``, one line per stage with the time since the start, and its counts at least every
    30 s while it runs."""

    LOG_EVERY = 30.0  # seconds between two lines of one stage in a log

    def __init__(self, log: bool = False) -> None:
        self.enabled = sys.stderr.isatty()
        self.log = log and not self.enabled
        self._progress = None
        self._task = None
        self._stage = None
        self._t0 = None

    def __enter__(self) -> StageProgress:
        if self.enabled:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                      TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                      console=err, transient=True)
            self._progress.start()
        return self

    def __call__(self, stage: str, done: float = 0, total: float | None = None, note: str = "") -> None:
        if self.log:
            self._log(stage, done, total, note)
        if self._progress is None:
            return
        if stage != self._stage:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(_esc(stage), total=total, detail="")
            self._stage = stage
        self._progress.update(self._task, completed=done, total=total)
        task = self._progress.tasks[-1]
        unit = "MB" if total and total > 1e6 and "records" in stage else ""
        scale = 1e6 if unit else 1.0
        detail = f"{done / scale:,.0f} / {total / scale:,.0f} {unit}".strip() if total else ""
        if task.speed:
            detail += f"  {task.speed / scale:,.0f} {unit or stage.split()[-1]}/s"
        self._progress.update(self._task, detail=_esc(f"{detail}  {note}" if note else detail))

    def _log(self, stage: str, done: float, total: float | None, note: str) -> None:
        """A line when a stage starts; then its counts every ``LOG_EVERY`` seconds, and at each tenth of its
        total when it reports a note (training's FVU), so a log shows a long stage moving."""
        import time

        t = time.perf_counter()
        self._t0 = self._t0 or t
        if stage != self._stage:
            print(f"[{t - self._t0:7.1f} s] {fmt.printable(stage)}", file=sys.stderr, flush=True)
            self._stage, self._last, self._tenth = stage, t, 0
            return
        tenth = int(10 * done / total) if total else 0
        if t - self._last >= self.LOG_EVERY or (note and tenth > self._tenth):
            counts = f"{done:,.0f} / {total:,.0f}" if total else f"{done:,.0f}"
            line = f"[{t - self._t0:7.1f} s]   {counts} {stage}" + (f"  {note}" if note else "")
            print(fmt.printable(line), file=sys.stderr, flush=True)
            self._last, self._tenth = t, tenth

    def say(self, text: str) -> None:
        say(text)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()


def causal_summary(evidence: dict[str, Any], strengths: dict[str, Any]) -> None:
    """Per feature and kind: held-out mean effect, CI, n, the test against the controls and the verdict."""
    t = _table("held-out causal effects (signed: + promotes the criterion)",
               ("feature", "kind", "strength", "effect [95% CI]", "/ baseline", "n", "claimed", "controls: n (p95)",
                "p (test)", "q", "paired bound", "KL", "verdict"), overflow="fold")
    for fid, e in evidence.items():
        for k in e["kinds"].values():
            ctl = k["controls"]
            verdict = "strong_causal" if k["strong_causal"] else "; ".join(map(str, k["reasons"]))
            if k.get("small_effect"):
                verdict += " (small_effect)"
            test = {"predictive_t": "t", "robust_t": "robust t"}.get(k.get("test") or "", "-")
            _row(t, fid, k["kind"], _fmt(k.get("strength"), 2), fmt.with_ci(k["mean_effect"], k["ci"]),
                 fmt.pct(k.get("effect_over_baseline")), k["n"],
                 k.get("claimed_direction") or "two-sided",
                 f"{ctl['n']} ({_fmt(ctl.get('threshold'), 4)})" if ctl["n"] else "0",
                 f"{_fmt(k.get('p_value'), 3)} ({test})", _fmt(k.get("q_value"), 3),
                 _fmt(k.get("paired_lower_bound"), 3), _fmt(k.get("kl"), 3), verdict)
    console.print(t)
    for fid, s in strengths.items():
        dose = s.get("dose_response")
        if isinstance(dose, list):
            steps = ", ".join(f"{fmt.num(r.get('strength'))}: {fmt.signed(r.get('gain'))}"
                              + (f" (KL {fmt.num(r['kl'])})" if r.get("kl") is not None else "") for r in dose)
        else:  # 0.3 runs
            side = s.get("calibration_side_effects") or {}
            steps = ", ".join(f"{k}: {fmt.signed(v)}" + (f" (KL {fmt.num(side[k])})" if k in side else "")
                              for k, v in (s.get("calibration_gains") or {}).items())
        console.print(_esc(f"{fid}: steering strength {s['chosen']:g} chosen on {s['calibration_prompts']} "
                           f"calibration prompts, {s['rule']} (mean gain by strength: {steps})"))


def calibration(res: Any) -> None:
    """``calibrate-causal``: the control tests per card x kind, then the false-positive rate line."""
    several = len(res.reports) > 1
    t = _table("leave-one-out control tests", (("report",) if several else ()) + (
        "feature", "kind", "claimed", "controls", "strong", "card's p"))
    for b in res.by_entry:
        _row(t, *((Path(b["report"]).parent.name,) if several else ()), b["feature_id"], b["key"],
             b["claimed_direction"] or "two-sided", b["tests"], b["strong"], _fmt(b["entry_p_value"], 3))
    console.print(t)
    for x in res.excluded:
        console.print(_esc(f"left out: {x['report']} {x['feature_id']} {x['key']} ({x['why']}: {x['controls']})"))
    for n in res.notes:
        console.print(_esc(f"note: {n}"))
    if several:
        for r in res.by_report:
            console.print(_esc(f"{r['report']}: {r['strong']} of {r['tests']} control tests strong"))
    console.print(_esc(res.line()))


def directions_table(directions: list[Any], best: Any) -> None:
    t = _table("contrast directions (AUROC of the projection per split)",
               ("feature", "method", "discovery", "calibration", "heldout", ""))
    for d in directions:
        _row(t, d.feature_id, d.method, *(_fmt(d.auroc.get(s)) for s in ("discovery", "calibration", "heldout")),
             "best (calibration)" if d is best else "")
    console.print(t)


def steer(res: Any) -> None:
    console.print(_esc(f"{res.feature} at {res.hook}, strength {res.strength:g} x {res.unit:.2f} (median norm there)"))
    p, base, steered = (_esc(x, "\n") for x in (res.prompt, res.baseline, res.steered))
    console.print(f"[bold]baseline:[/] {p}[cyan]{base}[/]")
    console.print(f"[bold]steered:[/]  {p}[magenta]{steered}[/]")
    t = _table("next token", ("baseline", "p", "steered", "p"))
    for (a, pa), (b, pb) in zip(res.baseline_top, res.steered_top):
        _row(t, repr(a), f"{pa:.4f}", repr(b), f"{pb:.4f}")
    console.print(t)
