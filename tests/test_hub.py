"""publish-hf-artifact and pull (issue 23 item 5): the card read from the manifest, and a round trip through a
Hugging Face Hub on loopback (tests/hub_server.py) that huggingface_hub itself talks to. No internet."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import socket
from pathlib import Path

import pytest
import yaml

pytest.importorskip("huggingface_hub")

from hub_server import HubServer  # noqa: E402

from interp_lab.report._format import num, signed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "examples" / "reports" / "units"
SAE = ROOT / "examples" / "sae-l15" / "checkpoint"
TOKEN = "hf_loopbackTOKEN0123456789"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def one_line_error(code: int, out: str, err: str) -> str:
    assert code == 2, (out, err)
    lines = [x for x in err.strip().splitlines() if not re.match(r"\[\s*[\d.]+ s\] ", x)]  # stage logs
    assert len(lines) == 1 and lines[0].startswith("interp-lab: error: "), err
    assert "Traceback" not in err and TOKEN not in err + out
    return lines[0]


def card_of(out: str) -> str:
    return out.split("--- README.md ---\n", 1)[1]


def front_matter(card: str) -> dict:
    return yaml.safe_load(card.split("---\n")[1])


@pytest.fixture(scope="module")
def hub():
    server = HubServer(TOKEN)
    yield server
    server.close()


@pytest.fixture(autouse=True)
def hf_env(tmp_path, monkeypatch):
    """huggingface_hub's home, token and interp-lab's cache in the test's folder; no proxy for loopback."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def small_report(tmp_path_factory) -> Path:
    """A report folder inspect writes from the example records (report.json, .md, .html, manifest.json)."""
    import interp_lab

    out = tmp_path_factory.mktemp("report") / "positive"
    interp_lab.inspect("m", "the prompt is positive", records=ROOT / "examples" / "activation_records.jsonl",
                       top_k=3, bootstrap=100, out=out)
    return out


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """An activation store written from the example records (no model)."""
    from interp_lab.sae.from_records import records_store

    path, _ = records_store(ROOT / "examples" / "activation_records.jsonl", tmp_path_factory.mktemp("store") / "s")
    return path


def test_dry_run_card_of_the_committed_example_report(cli):
    """The acceptance item: --dry-run on examples/reports/units prints each file (path, size, sha256) and a card
    naming the model revision, the criterion, the versions and the hashes, all read from its manifest and
    report; no token and no reachable Hub are needed."""
    import os

    os.environ.pop("HF_TOKEN")
    code, out, err = cli("publish-hf-artifact", "--repo-id", "someone/units-report", "--path", UNITS, "--dry-run",
                         "--tag", "units", "--endpoint", closed_port())
    assert code == 0, err
    manifest = json.loads((UNITS / "manifest.json").read_text())
    report = json.loads((UNITS / "report.json").read_text())
    card = card_of(out)
    model = next(i for i in manifest["inputs"] if i["role"] == "model")
    assert model["params"]["revision"] in card and report["model"] in card
    assert report["criterion"] in card
    assert f"interp-lab {manifest['tool']['version']}" in card and manifest["python"] in card
    for name, version in manifest["packages"].items():
        assert f"{name} {version}" in card
    for i in manifest["inputs"]:
        if i["sha256"]:
            assert i["sha256"] in card
    listing = out.split("--- README.md ---")[0]
    for o in manifest["outputs"]:  # the file list: path, size, sha256, as the manifest records them
        assert any(line.split() == [o["file"], f"{o['bytes']:,}", o["sha256"]] for line in listing.splitlines()), o
    meta = front_matter(card)
    assert meta["library_name"] == "interp-lab" and {"interp-lab", "report", "units"} <= set(meta["tags"])
    assert "license" not in meta  # none given, none invented
    first = report["cards"][0]
    assert f"`{first['feature_id']}`" in card and f"{first['association']['heldout']['effect']:+.3f}" in card
    for kind, entry in first["causal"].items():  # each intervention's effect and verdict, as the report says
        assert f"{kind} {signed(entry['mean_effect'])} ({'strong' if entry['strong_causal'] else 'not strong'})" in card
    held = report["splits"]["association"]["counts"]["heldout"]["prompts"]
    assert f"over the {held} held-out prompts" in card
    readme = next(line for line in listing.splitlines() if line.startswith("README.md"))
    assert readme.split()[2] == sha(card.encode())  # the listed card is the card printed


def test_sae_store_and_study_cards(cli, tmp_path, small_report, small_store):
    code, out, err = cli("publish-hf-artifact", "--repo-id", "a/sae", "--path", SAE, "--dry-run", "--repo-type",
                         "model", "--license", "apache-2.0")
    assert code == 0, err
    card, manifest = card_of(out), json.loads((SAE / "manifest.json").read_text())
    metrics = json.loads((SAE / "metrics.json").read_text())
    assert manifest["revision"] in card and manifest["hooks"][0] in card and manifest["dataset_hash"] in card
    assert f"| fvu | {num(metrics['heldout']['fvu'])} |" in card and f"{metrics['heldout']['tokens']:,} held-out" in card
    assert front_matter(card)["license"] == "apache-2.0" and "sae" in front_matter(card)["tags"]

    code, out, err = cli("publish-hf-artifact", "--repo-id", "a/store", "--path", small_store, "--dry-run")
    assert code == 0, err
    store = json.loads((small_store / "manifest.json").read_text())
    assert f"{store['rows']:,} token rows" in card_of(out) and store["hooks"][0] in card_of(out)
    listed = {line.split()[0]: line.split()[2] for line in out.split("--- README.md")[0].splitlines()[2:-1]}
    wanted = {rel: d for s in store["shards"] for rel, d in s["sha256"].items() if rel.startswith("acts/")}
    assert wanted and {rel: listed[rel] for rel in wanted} == wanted
    assert listed["tokens.parquet"] == store["tokens_sha256"]  # the token parts were merged into it

    study = tmp_path / "study"
    shutil.copytree(small_report, study / "reports" / "positive")
    shutil.copytree(small_store, study / "store")
    (study / "sae").mkdir()
    for f in SAE.iterdir():
        (study / "sae" / f.name).symlink_to(f)
    (study / "README.md").write_text("Notes the author wrote.\n")
    (study / ".scratch.tmp").write_text("left out")
    code, out, err = cli("publish-hf-artifact", "--repo-id", "a/study", "--path", study, "--dry-run")
    assert code == 0, err
    card = card_of(out)
    for folder, kind in (("reports/positive", "inspection report"), ("store", "activation store"),
                         ("sae", "SAE checkpoint")):
        assert f"| `{folder}` | {kind} |" in card
    assert card.rstrip().endswith("Notes the author wrote.") and "left out (1 hidden): .scratch.tmp" in out
    assert not any(line.startswith(".scratch.tmp") for line in out.splitlines())


def _bad(tmp_path, small_report, edit) -> Path:
    folder = tmp_path / "bad"
    shutil.copytree(small_report, folder)
    edit(folder)
    return folder


def _manifest_edit(change):
    def edit(folder: Path) -> None:
        m = json.loads((folder / "manifest.json").read_text())
        change(m)
        (folder / "manifest.json").write_text(json.dumps(m))
    return edit


BAD_FOLDERS = {
    "no_manifest": (lambda f: (f / "manifest.json").unlink(), "bad/manifest.json: file not found"),
    "malformed_json": (lambda f: (f / "manifest.json").write_text("{"), "bad/manifest.json: malformed JSON"),
    "bad_hash": (_manifest_edit(lambda m: m["outputs"][1].update(sha256="xyz")),
                 "bad/manifest.json: field outputs[1].sha256: Expected str matching regex"),
    "missing_version": (_manifest_edit(lambda m: m["tool"].pop("version")),
                        "bad/manifest.json: field tool.version: required field is missing"),
    "unknown_schema": (_manifest_edit(lambda m: m.update(schema_version="interp-lab.run.v9")),
                       "bad/manifest.json: field schema_version: unknown schema_version 'interp-lab.run.v9'"),
    "outside_file": (_manifest_edit(lambda m: m["outputs"][0].update(file="../x.json")),
                     "bad/manifest.json: field outputs[0].file: '../x.json' is not a file inside the folder"),
    "changed_file": (lambda f: (f / "report.md").write_text("edited"),
                     "bad/report.md: sha256 "),
    "empty_folder": (lambda f: [p.unlink() for p in f.iterdir()], "bad: no manifest.json here or in a subfolder"),
}


@pytest.mark.parametrize("case", sorted(BAD_FOLDERS))
def test_bad_folders_are_one_line(case, cli, tmp_path, small_report, monkeypatch):
    edit, message = BAD_FOLDERS[case]
    folder = _bad(tmp_path, small_report, edit)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("publish-hf-artifact", "--repo-id", "a/b", "--path", "bad", "--dry-run")
    line = one_line_error(code, out, err)
    assert message in line, line
    assert out == "" and {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the folder untouched
    if case == "changed_file":
        assert "recorded in manifest.json outputs[" in line


def test_publish_and_pull_round_trip(cli, hub, tmp_path, small_report):
    """Publish a report to the loopback Hub (create repo, preupload, NDJSON commit), pull it back into a folder
    and into the cache: the same bytes, every hash checked; the token sent, never shown."""
    code, dry, err = cli("publish-hf-artifact", "--repo-id", "you/positive", "--path", small_report, "--dry-run",
                         "--endpoint", hub.url)
    assert code == 0, err
    code, out, err = cli("publish-hf-artifact", "--repo-id", "you/positive", "--path", small_report,
                         "--endpoint", hub.url)
    assert code == 0, err
    assert TOKEN not in out + err and hub.auth and set(hub.auth) == {f"Bearer {TOKEN}"}
    on_hub = hub.files("datasets", "you/positive")
    mine = {p.name: p.read_bytes() for p in small_report.iterdir()}
    assert {k: v for k, v in on_hub.items() if k in mine} == mine
    assert on_hub["README.md"] == card_of(dry).encode()  # the card the dry run showed is the card published
    assert on_hub["SHA256SUMS"].decode().splitlines() == [f"{sha(mine[k])}  {k}" for k in sorted(mine)]

    code, out, err = cli("pull", "you/positive", "--endpoint", hub.url, "--out", tmp_path / "got")
    assert code == 0, err
    assert {k: (tmp_path / "got" / k).read_bytes() for k in mine} == mine
    assert "report of m" in out and f"{len(mine) + 2} files; {len(mine)} match" in out

    code, again, err = cli("publish-hf-artifact", "--repo-id", "you/positive", "--path", tmp_path / "got", "--dry-run")
    assert code == 0, err  # a pulled artifact published again: a new card (not the old one kept inside it)
    assert card_of(again) == card_of(dry) and "The folder's README.md" not in again

    code, out, err = cli("pull", "you/positive", "--endpoint", hub.url)
    assert code == 0, err
    commit = out.split("at commit ")[1].split(":")[0]
    cached = tmp_path / "cache" / "hub" / "datasets" / "you" / "positive" / commit
    assert out.strip().endswith(str(cached)) and (cached / "report.json").read_bytes() == mine["report.json"]
    code, out, err = cli("pull", "you/positive", "--endpoint", hub.url)
    assert code == 0 and "(already in the cache)" in out


def test_study_round_trip_on_a_branch(cli, hub, tmp_path, small_report, small_store, monkeypatch):
    """A study (a report and a store) to a branch, pulled back by branch: every part and the store's shard
    hashes checked. The default branch holds no artifact: pulling it is one line."""
    study = tmp_path / "study"
    shutil.copytree(small_report, study / "report")
    shutil.copytree(small_store, study / "store")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the endpoint from the environment this time
    code, out, err = cli("publish-hf-artifact", "--repo-id", "you/study", "--path", study, "--revision", "v1",
                         "--repo-type", "model", "--private")
    assert code == 0, err
    code, out, err = cli("pull", "you/study", "--repo-type", "model", "--revision", "v1", "--out", tmp_path / "got")
    assert code == 0, err
    assert "you/study at commit" in out and "  report: report" in out and "  store: store" in out
    n = len([p for p in study.rglob("*") if p.is_file()])
    assert f"{n + 2} files; {n} match" in out  # every file but the card and SHA256SUMS, each counted once
    got = {p.relative_to(tmp_path / "got"): p.read_bytes() for p in (tmp_path / "got").rglob("*") if p.is_file()}
    assert all(got[p.relative_to(study)] == p.read_bytes() for p in study.rglob("*") if p.is_file())

    files = hub.files("models", "you/study", "v1")
    shard = next(k for k in files if k.startswith("store/acts/"))
    files[shard] = files[shard][:-1] + bytes([files[shard][-1] ^ 1])  # one bit of the last value
    line = one_line_error(*cli("pull", "you/study", "--repo-type", "model", "--revision", "v1"))
    assert f"you/study/{shard}: sha256 " in line and "recorded in store/manifest.json shards[0].sha256" in line
    line = one_line_error(*cli("pull", "you/study", "--repo-type", "model", "--out", tmp_path / "main"))
    assert "you/study: no manifest.json here or in a subfolder" in line and not (tmp_path / "main").exists()


def test_pull_failures_are_one_line_and_leave_nothing(cli, hub, tmp_path, small_report):
    line = one_line_error(*cli("pull", "you/absent", "--endpoint", hub.url, "--out", tmp_path / "a"))
    assert "dataset you/absent: not found at" in line and not (tmp_path / "a").exists()

    line = one_line_error(*cli("pull", "you/absent", "--endpoint", closed_port(), "--out", tmp_path / "a"))
    assert "dataset you/absent: cannot reach" in line

    assert cli("publish-hf-artifact", "--repo-id", "you/tampered", "--path", small_report, "--endpoint", hub.url)[0] == 0
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    for taken, said in (("file", "a file, not a folder"), ("full", "exists and is not empty")):
        line = one_line_error(*cli("pull", "you/tampered", "--endpoint", hub.url, "--out", tmp_path / taken))
        assert f"--out {tmp_path / taken}: {said}" in line
    assert (tmp_path / "file").read_text() == "x" and [p.name for p in (tmp_path / "full").iterdir()] == ["mine.txt"]

    files = hub.files("datasets", "you/tampered")
    files["report.md"] += b"\nedited on the Hub\n"
    line = one_line_error(*cli("pull", "you/tampered", "--endpoint", hub.url, "--out", tmp_path / "t"))
    assert "you/tampered/report.md: sha256 " in line and "recorded in manifest.json outputs[" in line
    assert not (tmp_path / "t").exists() and not (tmp_path / "cache").exists()

    files["report.md"] = (small_report / "report.md").read_bytes()
    files["manifest.json"] += b"\n"  # no manifest hashes itself: SHA256SUMS does
    line = one_line_error(*cli("pull", "you/tampered", "--endpoint", hub.url))
    assert "you/tampered/manifest.json: sha256 " in line and "recorded in SHA256SUMS line" in line
    assert not list((tmp_path / "cache" / "hub" / "datasets" / "you" / "tampered").iterdir())  # no commit folder


def test_a_repo_id_the_hub_refuses_is_one_line(cli, small_report):
    line = one_line_error(*cli("publish-hf-artifact", "--repo-id", "a/b/c", "--path", small_report, "--dry-run"))
    assert "--repo-id 'a/b/c': Repo id must be in the form" in line
    line = one_line_error(*cli("pull", "a--b"))
    assert "REPO_ID 'a--b': Cannot have -- or .. in repo_id" in line


def test_publish_without_a_token_reaches_no_hub(cli, hub, small_report, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    before = len(hub.auth)
    line = one_line_error(*cli("publish-hf-artifact", "--repo-id", "you/x", "--path", small_report,
                               "--endpoint", hub.url))
    assert "no Hugging Face token" in line and len(hub.auth) == before
    monkeypatch.setenv("HF_TOKEN", "hf_wrongTOKEN")
    code, out, err = cli("publish-hf-artifact", "--repo-id", "you/x", "--path", small_report, "--endpoint", hub.url)
    line = one_line_error(code, out, err)
    assert "the Hub refused the request (HTTP 401)" in line and "hf_wrongTOKEN" not in out + err


def test_python_api(small_report):
    import interp_lab

    res = interp_lab.publish_hf_artifact(repo_id="you/r", path=str(small_report), dry_run=True, tags=["a", "b"])
    assert res.kind == "report" and res.dry_run and res.url is None
    assert [f.path for f in res.files if f.generated] == ["README.md", "SHA256SUMS"]
    assert {"a", "b", "synthetic"} <= set(front_matter(res.card)["tags"])  # the example records are planted data
    assert "SYNTHETIC EVIDENCE" in res.card


def test_the_docs_worked_example_is_the_real_output(cli, monkeypatch):
    """docs/providers/huggingface-hub.md shows --dry-run on the example report as it prints today."""
    doc = (ROOT / "docs" / "providers" / "huggingface-hub.md").read_text()
    shown = doc.split("````text\n", 1)[1].split("````", 1)[0]
    command, printed = shown.split("\n", 1)
    args = command.removeprefix("$ interp-lab ").split()
    monkeypatch.chdir(ROOT)
    code, out, err = cli(*args)
    assert code == 0, err
    assert out == printed
