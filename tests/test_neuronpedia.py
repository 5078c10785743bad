"""The Neuronpedia provider (issue 23 item 1): refs, the HTTP client against a real server on loopback
(retries, timeouts, bad answers, cache, API key), saved responses, the converter, and ``export-neuronpedia``
with its round trip. The server serves tests/data/neuronpedia/ (hand-written in the API's shape: see the
README there); no test needs the internet."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from interp_lab.errors import InputError, RemoteError, UsageError
from interp_lab.providers.neuronpedia import (
    NeuronpediaRef,
    feature_ids,
    load_features,
    parse_refs,
)
from interp_lab.providers.neuronpedia_http import NeuronpediaClient, retry_after

DATA = Path(__file__).resolve().parent / "data" / "neuronpedia"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
F650 = json.loads((DATA / "gpt2-small@6-res-jb@650.json").read_text())
F4102 = json.loads((DATA / "gpt2-small@6-res-jb@4102.json").read_text())
API = "/api/feature/gpt2-small/6-res-jb/"


class Server:
    """A Neuronpedia on loopback: ``routes[path]`` is a list of answers given in turn (the last one repeats),
    each ``(status, body bytes, headers)`` or ``"hang"`` (no answer until the test ends); every request's
    path and headers are recorded."""

    def __init__(self, routes: dict[str, list]):
        self.routes = routes
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                answers = server.routes.get(self.path, [(404, b'{"error": "not found"}', {})])
                n = sum(1 for p, _ in server.seen if p == self.path)
                answer = answers[min(n, len(answers)) - 1]
                if answer == "hang":
                    server.release.wait(10)
                    return
                status, body, headers = answer
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def hits(self, path: str) -> int:
        return sum(1 for p, _ in self.seen if p == path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def ok(feature: dict) -> tuple[int, bytes, dict]:
    return 200, json.dumps(feature).encode(), {}


@pytest.fixture(autouse=True)
def _cache_and_key(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("NEURONPEDIA_API_KEY", raising=False)


def client(server: Server, **kw) -> NeuronpediaClient:
    """Retries without waiting (the waits are what ``backoff`` and ``max_wait`` set)."""
    return NeuronpediaClient(server.url, **{"timeout": 2.0, "tries": 3, "backoff": 0.0, "max_wait": 0.0,
                                            "cache": False, **kw})


class Said:
    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, stage, done=0, total=None, note=""):
        pass

    def say(self, text):
        self.lines.append(text)


# ------------------------------------------------------------------------------------------------------ refs


def test_refs_in_every_form_several_per_value_each_once():
    refs = parse_refs(["gpt2-small@6-res-jb:650, https://www.neuronpedia.org/gpt2-small/6-res-jb/4102",
                       "https://neuronpedia.org/api/feature/gemma-2-2b/20-gemmascope-res-16k/1234?embed=true",
                       "gpt2-small@6-res-jb:650"])
    assert [r.key for r in refs] == ["gpt2-small@6-res-jb:650", "gpt2-small@6-res-jb:4102",
                                     "gemma-2-2b@20-gemmascope-res-16k:1234"]
    assert refs[0].api_path == "/api/feature/gpt2-small/6-res-jb/650"
    assert [r.layer for r in refs] == [6, 6, 20]
    assert NeuronpediaRef("gpt2-small", "6-res_scefr-ajt", 650).layer == 6
    assert NeuronpediaRef("m", "res-jb", 1).layer is None


@pytest.mark.parametrize("bad", ["gpt2-small/6-res-jb/650", "gpt2-small@6-res-jb", "gpt2-small@6-res-jb:-1",
                                 "https://www.neuronpedia.org/gpt2-small/6-res-jb", "m@../x:1"])
def test_a_bad_ref_is_one_usage_error_naming_it_and_the_forms(bad):
    with pytest.raises(UsageError) as e:
        parse_refs(bad)
    assert repr(bad) in str(e.value) and "model@source:index" in str(e.value) and "dashboard URL" in str(e.value)


def test_feature_ids_take_the_longer_form_only_where_two_collide():
    a, b, c = (NeuronpediaRef("gpt2-small", "6-res-jb", 650), NeuronpediaRef("gpt2-small", "6-att-kk", 650),
               NeuronpediaRef("gpt2-small", "res-jb", 7))
    assert feature_ids([a, c]) == ["L6:F650", "res-jb:F7"]
    assert feature_ids([a, b, c]) == ["6-res-jb:F650", "6-att-kk:F650", "res-jb:F7"]
    assert feature_ids([a, NeuronpediaRef("gpt2-xl", "6-res-jb", 650)]) == [
        "gpt2-small@6-res-jb:F650", "gpt2-xl@6-res-jb:F650"]


# ------------------------------------------------------------------------------------------------- the client


def test_a_fetched_feature_becomes_a_card_and_a_feature_row():
    with Server({API + "650": [ok(F650)]}) as s:
        (f,) = load_features("gpt2-small@6-res-jb:650", client=client(s))
    assert f.feature_id == "L6:F650" and f.row.feature_id == "L6:F650" and f.row.layer == 6
    assert f.row.label == "units of measurement written after a number"  # the first (best) explanation
    assert f.row.model == "gpt2-small" and f.row.source == "neuronpedia"
    assert f.response == F650  # the raw answer, every field
    np_ = f.card["neuronpedia"]
    assert [e["description"] for e in np_["explanations"]] == [e["description"] for e in F650["explanations"]]
    assert np_["explanations"][0]["typeName"] == "oai_token-act-pair"
    assert [s["value"] for s in np_["explanations"][0]["scores"]] == [0.41, 0.37]
    assert np_["density"] == F650["frac_nonzero"] and np_["max_activation"] == F650["maxActApprox"]
    assert [p["token"] for p in np_["logits"]["positive"]] == F650["pos_str"]
    assert [p["value"] for p in np_["logits"]["negative"]] == F650["neg_values"]
    assert np_["histograms"]["activation"]["heights"] == F650["freq_hist_data_bar_heights"]
    assert f.card["fingerprint"]["vocab"]["promoted"][:2] == [" metres", " kilometres"]
    top = f.card["examples"][0]
    assert top["text"] == "The bridge is 240 metres long and 12 metres wide."
    assert top["token_index"] == 4 and top["token"] == " metres" and top["activation"] == 31.62
    assert [t["focus"] for t in top["context"]].index(True) == 4  # the max-activating token, marked
    assert top["values"] == F650["activations"][0]["values"]
    assert f.texts["examples"][0] == "The bridge is 240[ metres] long and 12 metres wide."
    assert f.card["neuronpedia"]["url"] == f"{s.url}/gpt2-small/6-res-jb/650"


def test_429_then_success_is_retried_after_the_capped_retry_after():
    said = Said()
    with Server({API + "650": [(429, b'{"error": "slow down"}', {"Retry-After": "30"}), ok(F650)]}) as s:
        (f,) = load_features("gpt2-small@6-res-jb:650", client=client(s, max_wait=0.01, progress=said))
        assert s.hits(API + "650") == 2
    assert f.feature_id == "L6:F650"
    assert said.lines == ["neuronpedia: gpt2-small@6-res-jb:650: HTTP 429; try 2 of 3 in 0.0 s"]


def test_5xx_on_every_try_is_one_remote_error_naming_the_status_and_tries():
    with Server({API + "650": [(503, b"busy", {})]}) as s:
        with pytest.raises(RemoteError) as e:
            load_features("gpt2-small@6-res-jb:650", client=client(s))
        assert s.hits(API + "650") == 3
    assert "after 3 tries" in str(e.value) and "HTTP 503" in str(e.value) and API + "650" in str(e.value)


def test_a_server_that_does_not_answer_times_out_after_each_try():
    with Server({API + "650": ["hang"]}) as s:
        with pytest.raises(RemoteError) as e:
            load_features("gpt2-small@6-res-jb:650", client=client(s, timeout=0.2, tries=2))
        assert s.hits(API + "650") == 2
    assert "after 2 tries" in str(e.value) and "no answer within 0.2 s" in str(e.value)


def test_404_is_no_such_feature():
    with Server({}) as s:
        with pytest.raises(RemoteError) as e:
            load_features("gpt2-small@6-res-jb:999", client=client(s))
        assert s.hits(API + "999") == 1  # not retried
    assert str(e.value) == f"no such feature on Neuronpedia: gpt2-small@6-res-jb:999 ({s.url}{API}999)"


@pytest.mark.parametrize("body, at", [(json.dumps(F650).encode()[:200], "ends at byte 200"),
                                      (b'{"modelId": "gpt2-small", "layer": "6-res-jb" "index": "650"}', "byte 46")])
def test_malformed_json_names_the_url_and_position(body, at):
    with Server({API + "650": [(200, body, {})]}) as s:
        with pytest.raises(InputError) as e:
            load_features("gpt2-small@6-res-jb:650", client=client(s))
    msg = str(e.value)
    assert msg.startswith(f"{s.url}{API}650: malformed JSON") and at in msg


@pytest.mark.parametrize("body, field", [({"foo": 1}, "modelId"), ([F650], None), ({**F650, "index": "six"}, "index"),
                                         ({**F650, "activations": [{"tokens": ["a"], "values": []}]},
                                          "activations[0].values")])
def test_an_answer_that_is_not_a_feature_names_the_field(body, field):
    with Server({API + "650": [ok(body)]}) as s:
        with pytest.raises(InputError) as e:
            load_features("gpt2-small@6-res-jb:650", client=client(s))
    assert e.value.field == field and e.value.path == f"{s.url}{API}650"
    assert field != "modelId" or "not a Neuronpedia feature object" in str(e.value)


def test_an_error_object_with_status_200_says_so():
    with Server({API + "650": [ok({"error": "The model, source, or feature you specified is not available."})]}) as s:
        with pytest.raises(InputError, match="the answer is an error: The model, source"):
            load_features("gpt2-small@6-res-jb:650", client=client(s))


def test_the_cache_answers_the_second_load_and_cache_false_bypasses_it(tmp_path):
    with Server({API + "650": [ok(F650)], API + "4102": [ok(F4102)]}) as s:
        first = load_features(["gpt2-small@6-res-jb:650", "gpt2-small@6-res-jb:4102"], url=s.url)
        again = load_features(["gpt2-small@6-res-jb:650", "gpt2-small@6-res-jb:4102"], url=s.url)
        assert (s.hits(API + "650"), s.hits(API + "4102")) == (1, 1)
        assert [f.card for f in again] == [f.card for f in first]
        load_features("gpt2-small@6-res-jb:650", url=s.url, cache=False)
        assert s.hits(API + "650") == 2
    cached = list((tmp_path / "cache" / "neuronpedia").rglob("*.json"))
    assert sorted(p.name for p in cached) == ["4102.json", "650.json"]
    assert json.loads((cached[0]).read_text())["modelId"] == "gpt2-small"


def test_the_api_key_is_sent_when_set_never_printed_and_not_carried_to_another_host(monkeypatch):
    monkeypatch.setenv("NEURONPEDIA_API_KEY", "sk-secret-123")
    with Server({API + "650": [ok(F650)]}) as other:
        target = other.url + API + "650"
        with Server({API + "650": [(302, b"", {"Location": target})], API + "1": [(403, b"{}", {})]}) as s:
            (f,) = load_features("gpt2-small@6-res-jb:650", client=client(s))
            with pytest.raises(RemoteError) as e:
                load_features("gpt2-small@6-res-jb:1", client=client(s))
            assert [h.get("x-api-key") for _, h in s.seen] == ["sk-secret-123", "sk-secret-123"]
        assert other.hits(API + "650") == 1 and "x-api-key" not in other.seen[0][1]
    assert f.feature_id == "L6:F650"
    assert "HTTP 403" in str(e.value) and "NEURONPEDIA_API_KEY" in str(e.value) and "sk-secret" not in str(e.value)
    monkeypatch.delenv("NEURONPEDIA_API_KEY")
    with Server({API + "650": [ok(F650)]}) as s:
        load_features("gpt2-small@6-res-jb:650", client=client(s))
        assert "x-api-key" not in s.seen[0][1]


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0


# -------------------------------------------------------------------------------------------- saved responses


def test_saved_responses_are_matched_to_refs_by_their_own_fields(tmp_path):
    got = load_features(["gemma-2-2b@20-gemmascope-res-16k:1234", "gpt2-small@6-res-jb:650"], json_dir=DATA)
    assert [f.feature_id for f in got] == ["L20:F1234", "L6:F650"]
    gemma = got[0]
    assert gemma.card["provenance"]["read_from"] == "gemma-2-2b@20-gemmascope-res-16k@1234.json"
    assert gemma.card["fingerprint"]["vocab"]["promoted"][0] == " miles"  # SentencePiece's space as a space
    assert gemma.card["neuronpedia"]["logits"]["positive"][0]["token"] == "\u2581miles"  # as Neuronpedia wrote it
    assert gemma.card["neuronpedia"]["histograms"]["activation"]["heights"][2] is None  # a NaN, written as null
    assert len(load_features(json_dir=DATA)) == 3  # no refs: every file
    with pytest.raises(InputError) as e:
        load_features("gpt2-small@6-res-jb:1", json_dir=DATA)
    assert "no saved response for gpt2-small@6-res-jb:1" in str(e.value) and e.value.path == str(DATA)


def test_a_bad_saved_file_names_the_file_and_field(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(F650))
    (tmp_path / "b.json").write_text(json.dumps({**F4102, "pos_values": [1.0]}))
    with pytest.raises(InputError) as e:
        load_features(json_dir=tmp_path)
    assert e.value.path == str(tmp_path / "b.json") and e.value.field == "pos_values"
    (tmp_path / "b.json").write_text(json.dumps(F650))
    with pytest.raises(InputError, match="the feature gpt2-small@6-res-jb:650 again .also in a.json"):
        load_features(json_dir=tmp_path)
    with pytest.raises(InputError, match="expected a directory"):
        load_features(json_dir=tmp_path / "b.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \*\.json files"):
        load_features(json_dir=tmp_path / "empty")


# ---------------------------------------------------------------------------------------- export and back


def test_fetched_converted_exported_and_read_back_keeps_every_field(tmp_path, cli):
    """inspect --backend neuronpedia against a Neuronpedia on loopback writes imported cards; export-neuronpedia
    writes them back in the API's shape; read back, every field is the one fetched."""
    with Server({API + "650": [ok(F650)], API + "4102": [ok(F4102)]}) as s:
        fetched = load_features(["gpt2-small@6-res-jb:650", "gpt2-small@6-res-jb:4102"], client=client(s))
        report = tmp_path / "r"
        code, out, err = cli("inspect", "--criterion", "units of measurement", "--backend", "neuronpedia",
                             "--neuronpedia-url", s.url, "--neuronpedia-feature", "gpt2-small@6-res-jb:650",
                             "--neuronpedia-feature", f"{s.url}/gpt2-small/6-res-jb/4102", "--out", str(report))
    assert code == 0, err
    rep = json.loads((report / "report.json").read_text())
    assert rep["backend"] == "neuronpedia" and rep["model"] == "gpt2-small"
    assert [c["evidence_tier"] for c in rep["cards"]] == ["imported", "imported"]
    assert all(c["association"] is None and c["causal"] is None for c in rep["cards"])
    assert {i["name"] for i in rep["inputs"] if i["role"] == "neuronpedia"} == {"gpt2-small@6-res-jb:650",
                                                                                "gpt2-small@6-res-jb:4102"}
    assert any("Tier imported: no held-out association and no causal test" in n for n in rep["notes"])
    assert "Not measured on the model" in (report / "report.md").read_text()
    code, out, err = cli("export-neuronpedia", "--report", str(report), "--out", str(tmp_path / "np"))
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "np").iterdir()) == ["gpt2-small@6-res-jb@4102.json",
                                                                    "gpt2-small@6-res-jb@650.json"]
    back = load_features(["gpt2-small@6-res-jb:650", "gpt2-small@6-res-jb:4102"], json_dir=tmp_path / "np")
    for a, b in zip(fetched, back):
        assert b.feature_id == a.feature_id
        for part in ("explanations", "logits", "density", "max_activation", "histograms", "hook"):
            assert b.card["neuronpedia"][part] == a.card["neuronpedia"][part], part
        assert b.card["examples"] == a.card["examples"]
        assert b.row == a.row
    raw = json.loads((tmp_path / "np" / "gpt2-small@6-res-jb@650.json").read_text())
    assert raw["index"] == "650" and raw["pos_str"] == F650["pos_str"] and raw["frac_nonzero"] == F650["frac_nonzero"]
    with_match = {c["feature_id"]: c["text_match"] for c in rep["cards"]}
    assert set(with_match) == {"L6:F650", "L6:F4102"} and all(m["score"] is not None for m in with_match.values())
    for name in ("tokens", "values", "maxValue", "maxValueTokenIndex"):
        assert [a[name] for a in raw["activations"]] == [a[name] for a in F650["activations"]], name


def test_our_own_cards_export_and_come_back_with_their_ids(tmp_path):
    from interp_lab.api import export_neuronpedia

    res = export_neuronpedia(report=EXAMPLES / "reports" / "units", out=tmp_path / "np")
    cards = json.loads((EXAMPLES / "reports" / "units" / "report.json").read_text())["cards"]
    assert len(res.files) == len(cards) and not res.skipped
    back = {f.feature_id: f for f in load_features(json_dir=tmp_path / "np")}
    assert set(back) == {c["feature_id"] for c in cards}
    card = cards[0]
    got = back[card["feature_id"]]
    assert got.card["fingerprint"]["vocab"]["promoted"] == card["fingerprint"]["vocab"]["promoted"]
    assert [e["activation"] for e in got.card["examples"]] == [e["activation"] for e in card["examples"]]
    assert got.card["neuronpedia"]["density"] is None  # not measured: said, not invented


def test_export_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, cli):
    out = tmp_path / "np"
    code, _, err = cli("export-neuronpedia", "--report", str(tmp_path / "none"), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "file not found" in err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text('{"criterion": "x", "cards": [{"feature_id": "L1:F1"}]}')
    code, _, err = cli("export-neuronpedia", "--report", str(tmp_path / "bad"), "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "rank" in err
    code, _, err = cli("export-neuronpedia", "--store", str(tmp_path), "--out", str(out))
    assert code == 2 and "--store, --latents and --feature-indexes go together" in err
    code, _, err = cli("export-neuronpedia", "--out", str(out))
    assert code == 2 and "needs --report" in err
    code, _, err = cli("export-neuronpedia", "--store", str(tmp_path), "--latents", "x", "--feature-indexes", "a,b",
                       "--out", str(out))
    assert code == 2 and "--feature-indexes" in err and "not a comma list" in err
    assert not out.exists()


def test_inspect_says_in_one_line_what_the_site_did(tmp_path, cli):
    with Server({}) as s:  # every path: 404
        code, out, err = cli("inspect", "--criterion", "units", "--backend", "neuronpedia", "--neuronpedia-url",
                             s.url, "--neuronpedia-feature", "gpt2-small@6-res-jb:9", "--out", str(tmp_path / "r"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "gpt2-small@6-res-jb:9" in err
    assert not (tmp_path / "r").exists()
    code, _, err = cli("inspect", "--criterion", "units", "--backend", "neuronpedia")
    assert code == 2 and "--backend neuronpedia needs --neuronpedia-feature" in err


@pytest.mark.slow
@pytest.mark.realmodel
def test_features_with_their_sae_at_hand_are_measured_on_the_model(smollm2, tmp_path):
    """Neuronpedia features of a model and SAE interp-lab can load (saved responses naming two latents of the
    committed layer-15 SAE of SmolLM2, examples/sae-l15) are measured: read on the criterion's prompts,
    held out and tested like any latent; their explanations become the labels."""
    from tests.test_sae_latents import _small_units_spec

    from interp_lab.api import inspect

    saved = tmp_path / "saved"
    saved.mkdir()
    for index, text in ((3093, " units of measurement after a number"), (1763, " numbers before a unit")):
        doc = {**F650, "modelId": "smollm2-135m", "layer": "15-l15-topk", "index": str(index),
               "explanations": [{**F650["explanations"][0], "description": text}]}
        (saved / f"{index}.json").write_text(json.dumps(doc))
    res = inspect(smollm2, str(_small_units_spec(tmp_path)), backend="neuronpedia", bootstrap=100,
                  provider={"neuronpedia_json": str(saved)},
                  hf={"sae": str(EXAMPLES / "sae-l15" / "checkpoint"), "latent_kinds": ["ablate"], "n_controls": 4,
                      "side_prompts": 8, "contexts": None})
    cards = {c["feature_id"]: c for c in res.cards}
    assert set(cards) == {"L15:F3093", "L15:F1763"}
    unit = cards["L15:F3093"]
    assert unit["label"] == "units of measurement after a number" and unit["neuronpedia"]["source"] == "15-l15-topk"
    assert unit["evidence_tier"] in ("held_out", "causal") and unit["association"]["heldout"]["ci_excludes_zero"]
    assert "ablate" in unit["causal"] and unit["provenance"]["source"] == "neuronpedia"
    assert res.report["settings"]["pipeline"]["units"] == "F"
