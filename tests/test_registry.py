"""The command registry (issue 22): every command declared once, the command line, run configs and the Python
API generated from the declaration, old spellings kept as hidden aliases, choices listed, commands grouped."""

from __future__ import annotations

import dataclasses
import inspect as pyinspect
import io
import json
import sys

import pytest
from conftest import EXAMPLES

from interp_lab.api.registry import registry
from interp_lab.cli.main import _command
from interp_lab.schemas.command import GROUPS, NOTSET, fields_of, group_of


def _leaves(root, path=()):
    for name in root.list_commands(None):
        cmd = root.get_command(None, name)
        if hasattr(cmd, "list_commands"):
            yield from _leaves(cmd, path + (name,))
        else:
            yield " ".join(path + (name,)), cmd


def test_every_command_of_the_cli_is_a_registry_entry():
    reg = registry()
    leaves = dict(_leaves(_command()))
    assert set(leaves) == {c.name for c in reg}, "a command written outside the registry (or one not generated)"
    for c in reg:
        assert dataclasses.is_dataclass(c.options) and c.group in GROUPS and c.help, c.name
        params = {p.name for p in leaves[c.name].params}
        for f, tp, fl in fields_of(c.options):
            if fl.cli and group_of(tp) is None:
                assert (fl.param or f.name) in params, f"{c.name}: {f.name} has no flag"


def test_the_command_lines_defaults_are_the_options_defaults():
    """A flag whose text is converted (--strengths 0.25,0.5,...) shows a default that converts to the field's: the
    command line, a run config and the API start from the same values."""
    checked = 0
    for c in registry():
        stack = [c.options]
        while stack:
            cls = stack.pop()
            for f, tp, fl in fields_of(cls):
                if group_of(tp) is not None:
                    stack.append(group_of(tp))
                elif fl.cli and fl.cli_default is not NOTSET and fl.convert is not None:
                    assert fl.convert(fl.cli_default) == f.default, (c.name, f.name)
                    checked += 1
    assert checked >= 6  # inspect's kinds, strengths, contexts, cache; train-sae's --float32, --fresh


def test_the_keyword_api_is_the_options_dataclass():
    """``interp_lab.inspect(model, criterion, top_k=...)`` takes exactly the fields of InspectOptions (and progress)."""
    import interp_lab
    from interp_lab.api.inspect import InspectOptions

    sig = pyinspect.signature(interp_lab.inspect)
    assert list(sig.parameters) == [f.name for f in dataclasses.fields(InspectOptions)] + ["progress"]
    assert [p.default for p in sig.parameters.values()][:-1] == [
        f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(InspectOptions)]
    from interp_lab.api import harvest  # (interp_lab.harvest is the harvest package once that is imported)

    assert [p.name for p in pyinspect.signature(harvest).parameters.values()
            if p.default is p.empty] == ["model", "dataset"]  # positional model before a required dataset
    assert [p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD] == ["model", "criterion"]
    with pytest.raises(TypeError, match="top_kk"):
        interp_lab.inspect("m", "c", top_kk=3)


def test_an_old_spelling_means_what_the_new_one_does(tmp_path, cli):
    """``--k`` (before issue 22) is a hidden alias of ``--top-k``: the same graph, a note on stderr."""
    units = EXAMPLES / "reports" / "units"
    outs = {}
    for spelling in ("--k", "--top-k"):
        out = tmp_path / spelling.strip("-") / "graph.json"
        code, _, err = cli("export-attribution-graph", "--report", str(units), "--out", str(out),
                           "--include-similarity-edges", spelling, "2")
        assert code == 0, err
        outs[spelling] = out.read_bytes()
        assert ("old spelling of --top-k" in err) == (spelling == "--k")
    code, _, _ = cli("export-attribution-graph", "--report", str(units), "--out", str(tmp_path / "d" / "graph.json"),
                     "--include-similarity-edges")
    assert outs["--k"] == outs["--top-k"] != (tmp_path / "d" / "graph.json").read_bytes()  # default 3, not 2
    code, out, _ = cli("export-attribution-graph", "--help")
    assert "--top-k" in out and "--k " not in out  # hidden


def test_a_choice_is_listed_in_help_and_others_are_refused(cli):
    code, out, _ = cli("inspect", "--help")
    assert code == 0 and "--select-by <association|top_activations|both>" in out
    code, _, err = cli("inspect", "--criterion", "c", "--select-by", "nope")
    assert code == 2 and "Invalid value for '--select-by'" in err and "'nope' is not one of 'association'" in err


def test_help_groups_the_commands(cli):
    code, out, _ = cli("--help")
    titles = [line.rstrip(":") for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles == ["Options", "Inspect", "Models and stores", "SAEs", "Cross-model", "Utilities"], titles
    groups = {g.lower(): g for g in GROUPS}
    sections, current = {}, None
    for line in out.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            current = groups.get(line.rstrip(":").lower())
        elif line.startswith("  ") and current is not None:
            sections.setdefault(current, []).append(line.split()[0])
    shown = [n for names in sections.values() for n in names]
    assert len(shown) == len(set(shown)) and {"inspect", "match", "train-sae", "store", "version"} <= set(shown)
    assert "match" in sections["cross-model"] and "train-sae" in sections["SAEs"] and "run" in sections["utilities"]


def test_a_long_stage_logs_its_counts(monkeypatch):
    """In a log (stderr not a terminal) a stage prints a line when it starts, its counts every LOG_EVERY seconds,
    and at each tenth of its total when it reports a note."""
    from interp_lab.cli.render import StageProgress

    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    with StageProgress(log=True) as progress:
        progress.LOG_EVERY = float("inf")  # the tenths only
        for done in range(0, 101, 5):
            progress("training tokens", done, 100, note=f"FVU {1 - done / 100:.2f}")
        progress.LOG_EVERY = 0.0  # every call
        progress("scanning", 1, None)
        progress("scanning", 2, None)
    lines = err.getvalue().splitlines()
    assert lines[0].endswith("] training tokens")
    tenths = [line for line in lines if "/ 100 training tokens" in line]
    assert [line.split("]")[1].split("/")[0].strip() for line in tenths] == [str(t) for t in range(10, 101, 10)]
    assert tenths[-1].endswith("FVU 0.00")
    assert lines[-2].endswith("] scanning") and lines[-1].endswith("2 scanning")


def test_results_are_typed_where_they_cross_the_api(tmp_path):
    """``InspectResult.typed`` / ``MatchResult.typed``: the same JSON as validated structs with documented fields."""
    import json

    import interp_lab

    res = interp_lab.inspect("m", "the prompt is positive", records=EXAMPLES / "activation_records.jsonl",
                             interventions=EXAMPLES / "interventions.jsonl", top_k=3, bootstrap=100, out=tmp_path / "r")
    typed = res.typed
    assert [c.feature_id for c in typed.cards] == [c["feature_id"] for c in res.cards]
    tested = [c for c in typed.cards if c.causal]
    assert tested, "the example interventions test some card"
    for card, raw in ((c, next(r for r in res.cards if r["feature_id"] == c.feature_id)) for c in tested):
        for kind, entry in card.causal.items():
            assert (entry.strong_causal, entry.q_value, entry.mean_effect) == (
                raw["causal"][kind]["strong_causal"], raw["causal"][kind]["q_value"], raw["causal"][kind]["mean_effect"])
    assert json.loads((tmp_path / "r" / "report.json").read_text())["cards"] == res.cards  # JSON unchanged
    m = interp_lab.compare(tmp_path / "r", tmp_path / "r", k=2, null_pairs=200)
    assert [x.left_feature for x in m.typed.matches] == [x["left_feature"] for x in m.pairs]


def test_every_old_spelling_is_in_docs_cli():
    """docs/CLI.md's table of older spellings lists each one the registry keeps, on its command's row."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "CLI.md").read_text()
    rows = [line for line in doc.split("## Older spellings")[1].splitlines() if line.startswith("| ")]
    found = 0
    for c in registry():
        stack = [c.options]
        while stack:
            for _, tp, fl in fields_of(stack.pop()):
                if group_of(tp) is not None and fl.cli_type is None:
                    stack.append(group_of(tp))
                for old in fl.deprecated:
                    row = [r for r in rows if c.name in r.split("|")[1]]
                    assert row and f"`{old}`" in row[0] and f"`{fl.flag}`" in row[0], (c.name, old)
                    found += 1
    assert found >= 15


def test_a_run_config_logs_each_step(tmp_path, cli):
    """``interp-lab run`` in a log: a line as each step starts, then the step's own stages."""
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"out": str(tmp_path / "o"), "criterion": "the prompt is positive",
                               "records": str(EXAMPLES / "activation_records.jsonl"), "bootstrap": 100}))
    code, _, err = cli("run", str(cfg))
    assert code == 0, err
    lines = err.splitlines()
    assert any(line.endswith("] step inspect (inspect)") for line in lines), err
    assert any(line.endswith("] writing the report") for line in lines), err
