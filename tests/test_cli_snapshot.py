"""Every command and flag that parses today still parses, as itself or as an alias (issue 22, acceptance).

``tests/data/cli_snapshot.json`` describes the CLI as committed: every command path (sub-apps too), and for
each option every spelling, whether it is a flag, its type and choices, range, whether it is required, its
default and whether it is hidden; positional arguments in order. ``tests/cli_snapshot.py`` builds the same
description from the live click command (``interp_lab.cli.main._command()``) and writes the file:

    PYTHONPATH=src python tests/cli_snapshot.py            # list what differs from the snapshot
    PYTHONPATH=src python tests/cli_snapshot.py --write    # rewrite it (refused while a change is breaking)

Two checks, so that the command-registry refactor is safe but not painful:

* ``test_the_commands_and_flags_of_the_snapshot_still_parse`` (compatibility): what a user's command line
  relies on. Each command path still exists (it may be hidden); each spelling of each option is accepted by
  the same command, as its own option or an alias of another (hidden allowed), with the same flag-ness,
  arity and default, a type that reads the same text (a string may become a choice: item 5's enums), a
  range no narrower, not newly required; no new required option or argument. Then every spelling is parsed
  by the live click parser with a value, and the value must arrive. A default that changes, or an option
  that goes, is a deliberate act: ``--write --allow-breaking``, said in the commit.
* ``test_the_snapshot_is_the_cli_as_it_is`` (strict): any other difference (a new command or option, an
  alias, a hidden flag, a renamed parameter) fails with the list of differences until ``--write`` records it,
  so the snapshot keeps up and the next change is checked against the CLI as it then is.

``--debug`` is not a click option: ``cli.main.main`` takes it out of the arguments before click parses them
(tests/test_bad_input.py runs it).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import pytest
from cli_snapshot import (
    SNAPSHOT,
    breaking_changes,
    describe,
    differences,
    dumps,
    live_command,
    load,
    unparsed_spellings,
)


@pytest.fixture(scope="module")
def live():
    return describe(live_command())


def test_the_commands_and_flags_of_the_snapshot_still_parse(live):
    old = load()
    problems = breaking_changes(old, live)
    assert not problems, ("the CLI no longer accepts what the snapshot does (keep the old spelling as a hidden "
                          "alias, or see tests/cli_snapshot.py):\n" + "\n".join(problems))
    unparsed = unparsed_spellings(live_command(), old)
    assert not unparsed, "command lines of the snapshot that no longer parse:\n" + "\n".join(unparsed)
    assert len(old["commands"]) >= 38  # 35 commands, the root and its 2 sub-apps (store, models) today


def test_the_snapshot_is_the_cli_as_it_is(live):
    text = SNAPSHOT.read_text(encoding="utf-8")
    assert text == dumps(live), ("the CLI differs from tests/data/cli_snapshot.json; if that is intended, run "
                                 "`PYTHONPATH=src python tests/cli_snapshot.py --write`:\n"
                                 + "\n".join(differences(load(), live)))


def _option(desc, path, spelling):
    return next(o for o in desc["commands"][path]["options"] if spelling in o["opts"] + o["secondary_opts"])


def _remove_option(desc, path, spelling):
    desc["commands"][path]["options"].remove(_option(desc, path, spelling))


def _set(path, spelling, **changes):
    return lambda d: _option(d, path, spelling).update(changes)


def _drop_alias(d):
    _option(d, "interp-lab train-sae", "-k")["opts"].remove("-k")


def _new_required(d):
    d["commands"]["interp-lab inspect"]["options"].append(
        {**_option(d, "interp-lab inspect", "--seed"), "name": "probe_set", "opts": ["--probe-set"], "required": True})


def _required_argument(d):
    arg = d["commands"]["interp-lab run"]["arguments"][0]
    d["commands"]["interp-lab run"]["arguments"].append({**arg, "name": "extra"})


def _swap_flag_roles(d):
    o = _option(d, "interp-lab train-sae", "--keep-outliers")
    o["opts"], o["secondary_opts"] = o["secondary_opts"], o["opts"]


BREAKING = {
    "option removed": (lambda d: _remove_option(d, "interp-lab inspect", "--top-k"),
                       "interp-lab inspect --top-k: no longer accepted"),
    "alias removed": (_drop_alias, "interp-lab train-sae -k: no longer accepted"),
    "sub-command removed": (lambda d: d["commands"].pop("interp-lab store top"),
                            "interp-lab store top: the command is gone"),
    "default changed": (_set("interp-lab inspect", "--bootstrap", default=1000),
                        "interp-lab inspect --bootstrap: default was 500, is 1000"),
    "newly required": (_set("interp-lab inspect", "--model", required=True),
                       "interp-lab inspect --model: now required"),
    "flag takes a value": (_set("interp-lab inspect", "--json", flag=False, type="str"),
                           "interp-lab inspect --json: flag was True, is False"),
    "range narrowed": (_set("interp-lab match", "--null-pairs", min=1000),
                       "interp-lab match --null-pairs: minimum was 100, is 1000"),
    "type changed": (_set("interp-lab inspect", "--top-k", type="float"),
                     "interp-lab inspect --top-k: type was int, is float"),
    "new required option": (_new_required, "interp-lab inspect --probe-set: a new option that is required"),
    "new required argument": (_required_argument, "interp-lab run argument 2 (extra): a new argument that is required"),
    "flag roles swapped": (_swap_flag_roles, "interp-lab train-sae --keep-outliers: now sets the flag off (it set it on)"),
}


@pytest.mark.parametrize("change", sorted(BREAKING))
def test_a_breaking_change_to_the_live_description_is_caught(live, change):
    """Each change, made to a copy of the live description, is reported (and shows in the strict diff)."""
    mutate, says = BREAKING[change]
    new = copy.deepcopy(live)
    mutate(new)
    problems = breaking_changes(live, new)
    assert says in problems, problems
    assert differences(live, new)


def test_choices_may_grow_not_shrink(live):
    old, new = copy.deepcopy(live), copy.deepcopy(live)
    for d, choices in ((old, ["association", "top_activations", "both"]), (new, ["association", "both"])):
        _option(d, "interp-lab inspect", "--select-by").update(type="choice", choices=choices)
    assert breaking_changes(old, new) == ["interp-lab inspect --select-by: type was choice of association, "
                                          "top_activations, both, is choice of association, both"]
    assert breaking_changes(new, old) == []


def test_additions_aliases_hiding_and_enums_are_not_breaking(live):
    """What the refactor will do: a new command and option, an old spelling kept as a hidden alias of a
    renamed option, a string option turned into a choice, a command hidden."""
    new = copy.deepcopy(live)
    new["commands"]["interp-lab hello"] = {"group": False, "hidden": False, "arguments": [], "options": []}
    new["commands"]["interp-lab inspect"]["options"].append(
        {**_option(new, "interp-lab inspect", "--seed"), "name": "log_every", "opts": ["--log-every"]})
    b = _option(new, "interp-lab inspect", "--bootstrap")
    b["opts"] = ["--resamples"]
    new["commands"]["interp-lab inspect"]["options"].append({**b, "name": "bootstrap_alias", "opts": ["--bootstrap"],
                                                              "hidden": True})
    _option(new, "interp-lab store diff", "--by").update(type="choice", choices=["mean", "rate"])
    new["commands"]["interp-lab store"]["hidden"] = True
    assert breaking_changes(live, new) == []
    assert {"+ interp-lab hello", "+ interp-lab inspect --log-every"} <= set(differences(live, new))


def test_a_flag_whose_spelling_parses_to_the_other_value_is_caught(live):
    """The parse check runs the live click parser: a snapshot that calls ``--drop-outliers`` the setting
    spelling of train-sae's flag (the live parser sets it False) is reported."""
    old = copy.deepcopy(live)
    _swap_flag_roles(old)
    unparsed = unparsed_spellings(live_command(), old)
    assert any(p.startswith("interp-lab train-sae --drop-outliers") and "keep_outliers = False, expected True" in p
               for p in unparsed), unparsed
    assert unparsed_spellings(live_command(), live) == []


def test_a_plain_click_command_describes_as_its_typer_twin():
    """The registry may generate the CLI with click itself (issue 22 item 1): the same options declared with
    click read as the same description, so the snapshot still applies."""
    click = pytest.importorskip("click")
    import typer
    from cli_snapshot import _command

    app = typer.Typer(add_completion=False)

    @app.command()
    def twin(files: list[Path] = typer.Argument(...),
             n: int = typer.Option(3, "--n", "-n", min=1),
             keep: Optional[bool] = typer.Option(None, "--keep/--drop"),
             tag: list[str] = typer.Option([], "--tag"),
             out: Path = typer.Option(..., "--out"),
             strength: float = typer.Option(0.5, "--strength", min=0.0, max=1.0)) -> None:
        """Typer's."""

    @click.command()
    @click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
    @click.option("--n", "-n", type=click.IntRange(min=1), default=3)
    @click.option("--keep/--drop", default=None)
    @click.option("--tag", multiple=True, default=[])
    @click.option("--out", required=True, type=click.Path(path_type=Path))
    @click.option("--strength", type=click.FloatRange(0.0, 1.0), default=0.5)
    def plain(**kw) -> None:
        """Click's."""

    typer_twin = _command(typer.main.get_command(app))
    assert typer_twin == _command(plain), differences({"schema": 0, "commands": {"t": typer_twin}},
                                                      {"schema": 0, "commands": {"t": _command(plain)}})
    assert typer_twin["arguments"][0]["type"] == "Path" and typer_twin["arguments"][0]["nargs"] == -1
