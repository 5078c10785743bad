"""``--dataset hf:...``: Hugging Face datasets saved by ``save_to_disk``, Parquet and JSONL files, the text column,
the dataset's identity in caches and manifests, and one line for every bad name."""

import json

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from interp_lab.io.datasets import Corpus, iter_documents  # noqa: E402

# real text (gensim's Lee corpus, documents 2-9: 73 to 551 SmolLM2 tokens), one blank row and one null row
# between them
TEXTS = [d.text for d, _ in zip(iter_documents("lee"), range(10))][2:]
ROWS = TEXTS[:1] + ["   "] + TEXTS[1:5] + [None] + TEXTS[5:]
KEPT = [i for i, t in enumerate(ROWS) if t and t.strip()]  # the rows read: their index is the doc_id


def _table():
    from datasets import ClassLabel, Dataset, Features, Value

    n = len(ROWS)
    return Dataset.from_dict(
        {"text": ROWS, "topic": [i % 2 for i in range(n)], "title": [f"doc {i}" for i in range(n)],
         "words": [len((t or "").split()) for t in ROWS]},
        features=Features({"text": Value("string"), "topic": ClassLabel(names=["news", "sport"]),
                           "title": Value("string"), "words": Value("int32")}))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same table as a save_to_disk directory, a DatasetDict directory, Parquet and JSONL, and its texts as a
    prompt JSONL."""
    from datasets import DatasetDict

    d = tmp_path_factory.mktemp("hf")
    ds = _table()
    ds.save_to_disk(str(d / "saved"))
    DatasetDict({"train": ds, "test": ds.select(range(3))}).save_to_disk(str(d / "dict"))
    ds.to_parquet(str(d / "table.parquet"))
    (d / "table.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ds))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    ds.rename_column("text", "body").save_to_disk(str(d / "body"))  # two string columns, neither 'text'
    return d


def test_every_local_form_reads_the_same_documents(files):
    expected = [(i, t) for i, t in zip(KEPT, TEXTS)]
    plain = list(iter_documents(str(files / "prompts.jsonl")))
    for name in ("saved", "dict", "dict:train", "table.parquet", "table.jsonl"):
        docs = list(iter_documents(f"hf:{files / name}"))
        assert [(d.doc_id, d.text) for d in docs] == expected, name
        assert [d.prompt_id for d in docs] == [d.prompt_id for d in plain], name  # as the same text in JSONL
        # numbers and class labels come along as labels (class names where the dataset says them); the title,
        # a string, does not (it would repeat on every token row of a store)
        want = [i % 2 for i in KEPT] if name.endswith(".jsonl") else [("news", "sport")[i % 2] for i in KEPT]
        assert [d.labels["topic"] for d in docs] == want, name  # JSON keeps the numbers: it has no class names
        assert [d.labels["words"] for d in docs] == [len(ROWS[i].split()) for i in KEPT], name
        assert all("title" not in d.labels for d in docs)
    assert [d.text for d in iter_documents(f"hf:{files / 'dict'}:test")] == TEXTS[:2]


def test_text_column_choice(files):
    assert Corpus(f"hf:{files / 'saved'}").source.text_column == "text"
    titles = [d.text for d in iter_documents(f"hf:{files / 'saved'}", "title")]
    assert titles == [f"doc {i}" for i in range(len(ROWS))]
    assert [d.text for d in iter_documents(f"hf:{files / 'body'}", "body")] == TEXTS
    only = files / "only.parquet"
    _table().remove_columns(["title"]).rename_column("text", "content").to_parquet(str(only))
    assert [d.text for d in iter_documents(f"hf:{only}")] == TEXTS  # the only string column


@pytest.mark.parametrize("name, column, message", [
    ("body", None, "no 'text' column; name the one to read with --text-column (string columns: body, title)"),
    ("saved", "nope", "--text-column 'nope': {path} has no such column (string columns: text, title)"),
    ("saved", "words", "--text-column 'words': {path} has a column of numbers, not text (string columns: text, "
                       "title)"),
    ("dict:validation", None, "{path}: no split 'validation' (splits: train, test)"),
    ("saved:train", None, "a Dataset directory (one split), not a DatasetDict: drop :train"),
    ("table.jsonl:train", None, "a jsonl file has no configs or splits"),
    ("missing.parquet", None, "no such file or directory"),
])
def test_bad_names_and_columns_are_one_line(files, cli, name, column, message):
    path = str(files / name.split(":")[0])
    args = ["lens", "--dataset", f"hf:{files / name}"] + (["--text-column", column] if column else [])
    code, out, err = cli(*args)  # lens opens the dataset before it loads a model
    assert code == 2 and out == "", err
    assert len(err.strip().splitlines()) == 1 and message.format(path=path) in err, err


@pytest.mark.parametrize("dataset, column, message", [
    ("hf:", None, "give hf:NAME[:CONFIG][:SPLIT]"),
    ("hf:not an id", None, "is not a Hugging Face dataset id"),
    ("hf:owner/name:config:split:more", None, "too many parts"),
    ("lee", "text", "only an hf: dataset has columns to choose from"),
])
def test_bad_hf_names(cli, dataset, column, message):
    code, out, err = cli("lens", "--dataset", dataset, *(["--text-column", column] if column else []))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_a_directory_that_is_no_saved_dataset_and_a_text_file(files, cli, tmp_path):
    (tmp_path / "notes.txt").write_text("x\n")
    for name, message in ((tmp_path, "not a directory written by Dataset.save_to_disk"),
                          (tmp_path / "notes.txt", "an hf: file is .parquet or .jsonl")):
        code, _, err = cli("lens", "--dataset", f"hf:{name}")
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_jsonl_errors_name_the_line_and_field(files, cli, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "one"}\n{"text": "two"}\n{"text": 3}\n')
    code, _, err = cli("lens", "--dataset", f"hf:{bad}")
    assert code == 2 and err.strip().endswith(f"{bad}: line 3: field text: expected a string, got int"), err
    bad.write_text('{"text": "one"}\n[1, 2]\n')
    code, _, err = cli("lens", "--dataset", f"hf:{bad}")
    assert code == 2 and f"{bad}: line 2: expected a JSON object" in err, err


def test_a_hub_id_offline_is_one_line(cli, monkeypatch):
    # no network here (and with one, this id does not exist): one line, exit 2, and no minute of retries
    code, out, err = cli("lens", "--dataset", "hf:interp-lab-tests/no-such-dataset-x9:default:train")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "hf:interp-lab-tests/no-such-dataset-x9: the Hugging Face Hub does not serve this dataset here" in err
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    code, out, err = cli("lens", "--dataset", "hf:wikitext:wikitext-2-raw-v1")
    assert code == 2 and "the Hub is switched off (HF_HUB_OFFLINE)" in err and "save_to_disk" in err, err


def test_identity_tells_datasets_and_columns_apart(files, tmp_path):
    saved = Corpus(f"hf:{files / 'saved'}")
    ident = saved.identity()
    assert ident == {"kind": "disk", "name": str(files / "saved"), "split": None,
                     "fingerprint": datasets.load_from_disk(str(files / "saved"))._fingerprint, "text_column": "text"}
    assert saved.label == "hf:saved" and Corpus(f"hf:{files / 'dict'}").label == "hf:dict:train"
    keys = {Corpus(f"hf:{files / n}", c).key() for n, c in
            (("saved", None), ("saved", "title"), ("dict", None), ("dict:test", None), ("table.parquet", None),
             ("table.jsonl", None))}
    assert len(keys) == 6
    # a file's identity is its bytes: the same name with other rows is another dataset
    copy = tmp_path / "table.parquet"
    _table().select(range(5)).to_parquet(str(copy))
    assert Corpus(f"hf:{copy}").key() != Corpus(f"hf:{files / 'table.parquet'}").key()
    assert Corpus("lee").key() == "lee" and Corpus("lee").identity() is None  # as before: the name


def test_an_hf_dataset_is_read_only_as_far_as_asked(files):
    corpus = Corpus(f"hf:{files / 'saved'}")
    words = corpus.read(max_tokens=250, count_tokens=lambda text: len(text.split()))
    lengths = np.cumsum([len(t.split()) for t in TEXTS])
    assert len(words) == int(np.searchsorted(lengths, 250) + 1) < len(TEXTS)
    assert len(Corpus(str(files / "prompts.jsonl")).read(250, lambda t: len(t.split()))) == len(TEXTS)  # as before


@pytest.mark.realmodel
@pytest.mark.slow
def test_a_saved_dataset_harvests_like_the_same_text_as_jsonl(smollm2, files, tmp_path):
    from interp_lab.harvest.run import harvest
    from interp_lab.store.reader import Store

    hooks = "blocks.1.hook_resid_post,blocks.3.hook_mlp_out"  # the forward stops after layer 3
    kw = dict(context_length=48, batch_size=4, max_tokens=300)
    harvest(smollm2, f"hf:{files / 'saved'}", hooks, tmp_path / "hf", **kw)
    harvest(smollm2, str(files / "prompts.jsonl"), hooks, tmp_path / "jsonl", **kw)
    a, b = Store(tmp_path / "hf"), Store(tmp_path / "jsonl")
    ta, tb = a.tokens().to_pydict(), b.tokens().to_pydict()
    assert a.rows == b.rows == 300
    for col in ("token_id", "prompt_id", "position", "doc_position", "char_start", "char_end", "token_str"):
        assert ta[col] == tb[col], col
    for hook in hooks.split(","):
        np.testing.assert_array_equal(a.acts(hook), b.acts(hook))
    # the rows behind the blank one keep their place in the dataset (doc_id), and their labels come along
    assert sorted(set(ta["doc_id"])) == [0, 2, 3]  # 73 + 185 + 181 tokens of documents: enough for 300
    assert ta["label.topic"] == [("news", "sport")[i % 2] for i in ta["doc_id"]] and "label.title" not in ta
    m = a.manifest
    assert m.dataset == "hf:saved" and m.dataset_source["fingerprint"] and m.dataset_source["text_column"] == "text"
    # read only as far as 300 tokens need (the JSONL, as before, is read whole)
    assert m.documents < b.manifest.documents == len(TEXTS) and b.manifest.dataset_source is None


def test_a_hub_dataset_is_streamed_at_the_commit_read(tmp_path):
    """Through the loopback Hub of the publish tests (tests/hub_server.py): the Hub's HTTP API as
    huggingface_hub and datasets call it. ``load_dataset(streaming=True)`` reads the files the Hub lists;
    the identity is the commit read, and ``NAME@REVISION`` reads an older one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from hub_server import HubServer, Repo

    hub = HubServer("unused")
    repo = Repo()
    first = repo.commit("main", {"train.jsonl": "".join(json.dumps({"text": t, "n": i}) + "\n"
                                                       for i, t in enumerate(TEXTS[:3])).encode()})
    repo.commit("main", {"train.jsonl": "".join(json.dumps({"text": t, "n": i}) + "\n"
                                                for i, t in enumerate(TEXTS[3:])).encode(),
                         "test.jsonl": json.dumps({"text": "held out", "n": 0}).encode() + b"\n"})
    hub.repos[("datasets", "you/docs")] = repo
    script = """if True:
        import json, sys
        from interp_lab.io.datasets import Corpus
        out = []
        for name in sys.argv[1:]:
            c = Corpus(name)
            out.append([c.label, c.identity(), [(d.doc_id, d.text, d.labels) for d in c.documents()], c.key()])
        print(json.dumps(out))
    """
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_TELEMETRY": "1",
           "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    try:
        got = subprocess.run([sys.executable, "-c", script, "hf:you/docs", f"hf:you/docs@{first}", "hf:you/docs::test"],
                             env=env, capture_output=True, text=True, timeout=120)
    finally:
        hub.close()
    assert got.returncode == 0, got.stderr
    (label, ident, docs, key), (_, old, old_docs, old_key), (test_label, _, test_docs, _) = json.loads(got.stdout)
    assert label == "hf:you/docs::train" and test_label == "hf:you/docs::test"  # train: the default of two splits
    assert ident == {"kind": "hub", "name": "you/docs", "config": None, "split": "train",
                     "revision": repo.branches["main"], "text_column": "text"}
    assert [(i, t) for i, t, _ in docs] == list(enumerate(TEXTS[3:])) and docs[1][2] == {"n": 1}
    assert old["revision"] == first and [t for _, t, _ in old_docs] == TEXTS[:3] and old_key != key
    assert [t for _, t, _ in test_docs] == ["held out"]
