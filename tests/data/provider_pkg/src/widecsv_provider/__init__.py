"""A provider as a third-party package writes one: ``inspect --backend widecsv --provider-option csv=FILE``
reads a CSV with columns prompt_id, text, score and one column per feature, and hands interp-lab
activation records."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from interp_lab.errors import UsageError
from interp_lab.io.inputs import InputInfo
from interp_lab.io.records import read_records
from interp_lab.providers.base import Evidence


class WideCSV:
    name = "widecsv"
    source = "activations in a wide CSV (a column per feature)"
    needs = "nothing"

    def check(self, request):
        if "csv" not in request.extra:
            raise UsageError("--backend widecsv needs --provider-option csv=FILE")

    def provide(self, request, progress):
        path = Path(request.extra["csv"])
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        features = [k for k in rows[0] if k not in ("prompt_id", "text", "score")]
        with tempfile.TemporaryDirectory() as tmp:
            jsonl = Path(tmp) / "records.jsonl"
            with open(jsonl, "w") as out:
                for r in rows:
                    out.write(json.dumps({"prompt_id": r["prompt_id"], "text": r["text"],
                                          "criterion_score": float(r["score"]), "model": request.model,
                                          "features": {f: float(r[f]) for f in features if float(r[f])},
                                          "metadata": {"source": "widecsv"}}) + "\n")
            matrix = read_records(jsonl)
        matrix.path = path.name
        ev = Evidence(backend=self.name, matrix=matrix, rank_on=matrix)
        ev.inputs.append(InputInfo.file("widecsv", path, rows=len(rows)))
        return ev
