"""Reports are byte-identical for the same inputs and seed; run configs (JSON, TOML, YAML; steps and flat) work."""

import json
import shutil

import msgspec
import pytest

from interp_lab.api import inspect, run_config


def test_report_bytes_do_not_depend_on_out(tmp_path, synthetic_files):
    a = inspect("m", "c", records=synthetic_files["records"], interventions=synthetic_files["interventions"],
                out=tmp_path / "a", seed=5, bootstrap=100)
    sub = tmp_path / "deep" / "er"
    inspect("m", "c", records=synthetic_files["records"], interventions=synthetic_files["interventions"],
            out=sub, seed=5, bootstrap=100)
    ja, jb = (tmp_path / "a" / "report.json").read_bytes(), (sub / "report.json").read_bytes()
    assert ja == jb
    assert (tmp_path / "a" / "report.html").read_bytes() == (sub / "report.html").read_bytes()
    assert str(tmp_path).encode() not in ja  # no absolute paths in the report
    man = json.loads((sub / "manifest.json").read_text())
    # ... they go to the manifest, relative to it (no absolute path of this machine there either)
    assert not man["inputs"][0]["path"].startswith("/") and str(tmp_path) not in (sub / "manifest.json").read_text()
    assert (sub / man["inputs"][0]["path"]).resolve() == synthetic_files["records"].resolve()
    assert man["outputs"][0]["file"] == "report.json"
    c = inspect("m", "c", records=synthetic_files["records"], out=tmp_path / "c", seed=6, bootstrap=100)
    assert (tmp_path / "c" / "report.json").read_bytes() != ja  # the seed and the inputs matter
    assert a.report_path == tmp_path / "a" / "report.json" and c.cards[0]["rank"] == 1


def test_copied_input_gives_the_same_report(tmp_path, synthetic_files):
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(synthetic_files["records"], other / "records.jsonl")
    a = inspect("m", "c", records=synthetic_files["records"], bootstrap=100).report
    b = inspect("m", "c", records=other / "records.jsonl", bootstrap=100).report
    assert msgspec.json.encode(a, order="sorted") == msgspec.json.encode(b, order="sorted")


CONFIGS = {
    "json": lambda rec, out: json.dumps({"out": str(out), "model": "m", "criterion": "c", "backend": "records",
                                         "records": str(rec), "top_k": 5}),
    "toml": lambda rec, out: f'out = "{out}"\nmodel = "m"\ncriterion = "c"\nbackend = "records"\n'
                             f'records = "{rec}"\ntop_k = 5\n',
    "yaml": lambda rec, out: f"out: {out}\nmodel: m\ncriterion: c\nbackend: records\nrecords: {rec}\ntop_k: 5\n",
}


@pytest.mark.parametrize("fmt", sorted(CONFIGS))
def test_flat_config_twice_gives_identical_report(tmp_path, synthetic_files, fmt):
    cfg = tmp_path / f"run.{fmt}"
    out = tmp_path / "out"
    cfg.write_text(CONFIGS[fmt](synthetic_files["records"], out))
    first = run_config(cfg)
    first_bytes = (out / "report.json").read_bytes()
    assert first.steps[0]["status"] == "ok"
    man = json.loads((out / "run_manifest.json").read_text())
    assert man["schema_version"] == "interp-lab.run.v1" and man["status"] == "ok"
    assert man["steps"][0]["inputs"][0]["sha256"] and man["config"]["sha256"]
    assert {o["file"].rsplit("/", 1)[-1] for o in man["steps"][0]["outputs"]} >= {"report.json", "report.md",
                                                                                  "report.html"}
    again = run_config(cfg)
    assert again.steps[0]["status"] == "cached"  # unchanged inputs and outputs: skipped
    forced = run_config(cfg, force=True)
    assert forced.steps[0]["status"] == "ok"
    assert (out / "report.json").read_bytes() == first_bytes


def test_steps_config_refers_to_earlier_outputs(tmp_path, synthetic_files):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "seed: 3\n"
        "manifest: " + str(tmp_path / "m.json") + "\n"
        "steps:\n"
        f"  - {{name: ranked, command: inspect, criterion: c, records: {synthetic_files['records']}, "
        f"out: {tmp_path / 'a'}, top_k: 3, seed: 3}}\n"
        f"  - name: with-causal\n    command: inspect\n    criterion: c\n"
        f"    records: {synthetic_files['records']}\n    interventions: {synthetic_files['interventions']}\n"
        "    out: '{steps.ranked.out}-causal'\n    seed: 3\n")
    res = run_config(cfg)
    assert [s["status"] for s in res.steps] == ["ok", "ok"]
    assert (tmp_path / "a-causal" / "report.json").exists()
    man = json.loads((tmp_path / "m.json").read_text())
    assert man["seed"] == 3 and len(man["steps"]) == 2
    assert [s["status"] for s in run_config(cfg).steps] == ["cached", "cached"]
    cfg.write_text(cfg.read_text().replace("top_k: 3", "top_k: 4"))  # the first step changes ...
    assert [s["status"] for s in run_config(cfg).steps] == ["ok", "ok"]  # ... and the one reading its out reruns


def test_a_moved_checkout_finds_its_steps_up_to_date(tmp_path, synthetic_files, monkeypatch):
    """Inputs count by content: a study run in one directory and copied (as a clone would be) to another is
    cached there, while an edited input still reruns its step."""
    here = tmp_path / "here"
    (here / "data").mkdir(parents=True)
    shutil.copy(synthetic_files["records"], here / "data" / "records.jsonl")
    (here / "run.yaml").write_text(
        "manifest: m.json\nsteps:\n"
        "  - {name: ranked, command: inspect, criterion: c, records: data/records.jsonl, out: a, top_k: 3}\n")
    monkeypatch.chdir(here)
    assert [s["status"] for s in run_config("run.yaml").steps] == ["ok"]
    assert json.loads((here / "m.json").read_text())["steps"][0]["inputs"][0]["path"] == "data/records.jsonl"
    there = tmp_path / "there"
    shutil.copytree(here, there)
    monkeypatch.chdir(there)
    assert [s["status"] for s in run_config("run.yaml").steps] == ["cached"]
    rec = there / "data" / "records.jsonl"
    rec.write_text("".join(rec.read_text().splitlines(keepends=True)[:-1]))  # one record fewer
    assert [s["status"] for s in run_config("run.yaml").steps] == ["ok"]


def test_bad_configs_name_file_line_and_field(tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("out: x\ncriterion: c\nrecords: [unclosed\n")
    code, _, err = cli("run", bad)
    assert code == 2 and f"{bad}: line" in err and "malformed YAML" in err
    unknown = tmp_path / "u.json"
    unknown.write_text(json.dumps({"out": "x", "criterion": "c", "recrods": "r.jsonl"}))
    code, _, err = cli("run", unknown)
    assert code == 2 and "field recrods: unknown option 'recrods' for inspect" in err
    toml = tmp_path / "t.toml"
    toml.write_text('out = "x"\ncriterion = \n')
    code, _, err = cli("run", toml)
    assert code == 2 and f"{toml}: line 2" in err
    cmd = tmp_path / "c.json"
    cmd.write_text(json.dumps({"steps": [{"command": "explode", "out": "x"}]}))
    code, _, err = cli("run", cmd)
    assert code == 2 and "field steps[0].command: unknown command 'explode'" in err


def _alias_bomb(levels: int) -> str:
    """YAML whose last anchor stands for 9**levels strings in a few hundred bytes."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_yaml_aliases_cannot_blow_up_a_config(tmp_path, cli):
    """A 9**6-value alias bomb (300 bytes) and a self-referring alias: one line naming the file, nothing
    resolved or run. (A 9**9 one, 490 bytes, is refused the same way; on 4.0.0.dev0 it grew without bound.)"""
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_alias_bomb(6) + f"steps:\n  - {{command: inspect, criterion: c, records: {tmp_path}/none.jsonl, "
                    f"out: {tmp_path}/o, hf: {{sae: *a6}}}}\n")
    assert len(_alias_bomb(6)) < 400
    code, _, err = cli("run", bomb)
    assert code == 2 and err == f"interp-lab: error: {bomb}: more than 100,000 values, counting every use of a YAML alias\n"
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"steps:\n  - {{command: inspect, criterion: c, out: {tmp_path}/o, hf: &h {{sae: [*h]}}}}\n")
    code, _, err = cli("run", loop)
    assert code == 2 and err == f"interp-lab: error: {loop}: a YAML alias refers to a value that contains it (a cycle)\n"
    assert not (tmp_path / "o").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("option, says", [
    ("top_k: ten", "top_k: expected `int`, got `str`"),
    ("bootstrap: 1", "bootstrap: expected at least 50 (as --bootstrap), got 1"),
    ("top_k: true", "top_k: expected `int`, got `bool`"),
    ("formats: [json, 3]", "formats: expected `str`, got `int` - at `$[1]`"),
    ("hf: {n_controls: 0}", "hf.n_controls: expected at least 1 (as --controls), got 0"),
    ("hf: {strengths: [1, big]}", "hf.strengths: expected `float`, got `str` - at `$[1]`"),
    ("hf: {contols: 3}", "hf.contols: unknown option 'contols'"),
    ("progress: print", "progress: unknown option 'progress' for inspect"),
])
def test_step_options_are_type_and_range_checked(tmp_path, cli, synthetic_files, option, says):
    """A step option of the wrong type or outside the CLI's range stops the run before its first step."""
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"steps:\n  - {{command: inspect, criterion: c, records: {synthetic_files['records']}, "
                   f"out: {tmp_path}/first}}\n"
                   f"  - {{command: inspect, criterion: c, out: {tmp_path}/second, {option}}}\n")
    code, _, err = cli("run", cfg)
    assert code == 2 and err.startswith(f"interp-lab: error: {cfg}: field steps[1].{says}"), err
    assert len(err.splitlines()) == 1 and not (tmp_path / "first").exists()


def test_every_range_the_cli_declares_holds_in_run_configs(tmp_path):
    """Each run-config command's CLI minimums (and maximums) refuse the same values in a config; an option
    of inspect's hf or provider mapping is checked there. Fails when a CLI flag's name has no config
    counterpart."""
    from dataclasses import fields

    from interp_lab.api.registry import registry
    from interp_lab.cli.main import _command
    from interp_lab.errors import InputError
    from interp_lab.providers.hf import HFOptions
    from interp_lab.providers.options import ProviderOptions
    from interp_lab.runs.config import normalize_steps
    from interp_lab.runs.options import settable

    group_of = {f.name: group for group, cls in (("hf", HFOptions), ("provider", ProviderOptions))
                for f in fields(cls)}
    root = _command()
    checked = 0
    for command, entry in registry().steps().items():
        cli = root.get_command(None, command)
        for param in (p for p in cli.params if not p.hidden):  # an old spelling's range is its option's
            name, flag = param.name, param.opts[0]
            for edge, bad in ((getattr(param, "min", None), -1), (getattr(param, "max", None), +1)):
                if edge is None:
                    continue
                value = edge + bad if isinstance(edge, int) else edge + bad * 1e-3
                if name in settable(entry.options):
                    step, field = {name: value}, name
                else:
                    assert command == "inspect" and name in group_of, f"{command} {flag}: no config option"
                    step, field = {group_of[name]: {name: value}}, f"{group_of[name]}.{name}"
                with pytest.raises(InputError, match=f"steps\\[0\\].{field}: expected at (least|most) "):
                    normalize_steps({"steps": [{"command": command, "out": "x", **step}]}, tmp_path / "c.yaml",
                                    registry())
                checked += 1
    assert checked >= 25  # inspect 8, harvest 4, train-sae 14, match 2, transfer 2 today


def test_written_reports_and_manifests_validate_against_their_types(tmp_path, synthetic_files):
    from interp_lab.schemas.reports import InspectionReport, RunManifest, read_document, read_report

    inspect("m", "c", records=synthetic_files["records"], interventions=synthetic_files["interventions"],
            out=tmp_path / "r", bootstrap=100)
    rep = read_report(tmp_path / "r" / "report.json")
    assert isinstance(rep, InspectionReport) and rep.cards[0].rank == 1 and rep.cards[0].evidence_tier == "causal"
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"out": str(tmp_path / "o"), "criterion": "c", "records": str(synthetic_files["records"])}))
    run_config(cfg)
    man = read_document(tmp_path / "o" / "run_manifest.json", RunManifest)
    assert man.steps[0].status == "ok"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"criterion": "c", "cards": [{"feature_id": "a", "rank": "first"}]}))
    from interp_lab.errors import InputError

    with pytest.raises(InputError, match=r"bad.json: field cards\[0\]\.rank: Expected int, got str"):
        read_report(bad)


@pytest.mark.realmodel
def test_harvest_train_and_match_two_saes_in_one_config(tmp_path, smollm2):
    """A config harvests a named corpus, trains two SAEs and matches them by decoder; rerun, it skips all."""
    cfg = tmp_path / "seeds.yaml"
    steps = ["steps:", "  - {name: harvest, command: harvest, model: smollm2-135m, dataset: lee, "
             f"hooks: blocks.3.hook_resid_post, max_tokens: 6000, context_length: 64, out: {tmp_path}/store}}"]
    for seed in (0, 1):
        steps.append(f"  - {{name: sae{seed}, command: train-sae, store: '{{steps.harvest.out}}', layer: 3, "
                     f"preset: minimal, tokens: 5000, seed: {seed}, ce_tokens: 0, out: {tmp_path}/sae{seed}}}")
    for name, right in (("same", "sae0"), ("seeds", "sae1")):
        steps.append(f"  - {{name: {name}, command: match, left: '{{steps.sae0.out}}', right: '{{steps.{right}.out}}', "
                     f"weights: {{decoder: 1.0}}, k: 5, null_pairs: 2000, out: {tmp_path}/{name}.json}}")
    cfg.write_text("\n".join(steps) + "\n")
    res = run_config(cfg, manifest_out=tmp_path / "m.json")
    harvest_inputs = res.manifest["steps"][0]["inputs"]
    assert {"option": "dataset", "corpus": "lee"} in harvest_inputs
    same = json.loads((tmp_path / "same.json").read_text())
    seeds = json.loads((tmp_path / "seeds.json").read_text())
    assert same["left"]["kind"] == "sae" and same["left"]["hook"] == "blocks.3.hook_resid_post"
    assert same["summary"]["one_to_one_above"]["decoder"]["0.9"] == 1.0  # an SAE is its own match
    shares = seeds["summary"]["one_to_one_above"]["decoder"]
    assert shares["0.9"] <= shares["0.7"] <= shares["0.5"] < 1.0  # another seed learns other latents
    again = run_config(cfg, manifest_out=tmp_path / "m.json")
    assert [s["status"] for s in again.manifest["steps"]] == ["cached"] * 5


@pytest.mark.realmodel
def test_a_killed_run_resumes_after_its_last_finished_step(tmp_path, synthetic_files, smollm2):
    """kill -9 during the second step: the manifest written after the first one lets the rerun skip it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    cfg = tmp_path / "run.yaml"
    manifest = tmp_path / "m.json"
    cfg.write_text(
        f"manifest: {manifest}\nsteps:\n"
        f"  - {{name: first, command: inspect, criterion: c, records: {synthetic_files['records']}, "
        f"out: {tmp_path / 'a'}, top_k: 3}}\n"
        f"  - {{name: second, command: harvest, model: smollm2-135m, dataset: lee+enwiki, "
        f"hooks: blocks.2.hook_resid_post, max_tokens: 400000, out: {tmp_path / 'store'}}}\n")
    proc = subprocess.Popen([sys.executable, "-m", "interp_lab", "run", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["status"] == "running":
            break
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    m = json.loads(manifest.read_text())
    assert m["status"] == "running" and [s["name"] for s in m["steps"]] == ["first"]
    cfg.write_text(cfg.read_text().replace("max_tokens: 400000", "max_tokens: 2000"))
    res = run_config(cfg)
    assert [s["status"] for s in res.steps] == ["cached", "ok"] and res.manifest["status"] == "ok"
