"""Load: 20 review files dropped into the inbox at once, two scheduled scoring runs overlapping,
while a training flow runs beside them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from models.architectures import ARCHITECTURES

pytestmark = pytest.mark.e2e

# One scheduled run of the `score` flow over the inbox, as the deployment starts it.
SCORE_INBOX = (
    "import json, sys, flows; from tasks.core.servers import prefect_api; from flows.scoring import score; "
    "from tasks.core.config import ScoringConfig\n"
    "with prefect_api():\n"
    "    rows = score(scoring=ScoringConfig(inbox=sys.argv[1], output_dir=sys.argv[2], archive_dir=sys.argv[3], chunk_size=7))\n"
    "print(json.dumps(rows))"
)


def test_twenty_files_during_a_training_are_each_scored_exactly_once(smoke_training, mlflow_server, shared_cache, imdb_archive, tmp_path):
    table = next(shared_cache.glob("reviews-*[0-9a-f].parquet"))
    reviews = pd.read_parquet(table).query("split == 'test'").sample(400, random_state=11)
    inbox, outbox, archive = tmp_path / "inbox", tmp_path / "outbox", tmp_path / "archive"
    inbox.mkdir()
    for i in range(20):
        part = reviews.iloc[i * 20 : (i + 1) * 20][["review_id", "text"]]
        staged = inbox / f".r{i:02d}.csv"  # copied in under a hidden name, then renamed: never read half-written
        part.to_csv(staged, index=False)
        staged.rename(inbox / f"r{i:02d}.csv")

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    reviewflow = str(Path(sys.executable).parent / "reviewflow")
    training = subprocess.Popen(
        [reviewflow, "train", "--profile", "smoke", "--set", "train.architectures=rnn", "--set", f"data.cache_dir={shared_cache}"],
        cwd=tmp_path, env={**env, "REVIEWFLOW_DATA": str(imdb_archive), "MLFLOW_TRACKING_URI": "sqlite:///training.db"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    scoring_env = {**env, "MLFLOW_TRACKING_URI": mlflow_server}
    runs = [
        subprocess.Popen([sys.executable, "-c", SCORE_INBOX, str(inbox), str(outbox), str(archive)], cwd=tmp_path,
                         env=scoring_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    reports = []
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    _, training_err = training.communicate(timeout=900)
    assert training.returncode == 0, training_err[-3000:]

    scored = [row["file"] for report in reports for row in report if row["status"] == "scored"]
    assert sorted(scored) == [f"r{i:02d}.csv" for i in range(20)]  # each once, by one run or the other
    assert not [row for report in reports for row in report if row["status"] == "quarantined"]
    assert sorted(p.name for p in archive.iterdir()) == [f"r{i:02d}.csv" for i in range(20)]
    assert not [p for p in inbox.iterdir() if not p.name.startswith(".")]
    for i in range(20):
        output = pd.read_csv(outbox / f"r{i:02d}.scored.csv", keep_default_na=False)
        assert output["review_id"].tolist() == reviews.iloc[i * 20 : (i + 1) * 20]["review_id"].tolist()
        assert {f"prob_{a}" for a in ARCHITECTURES} <= set(output.columns)
        manifest = json.loads((outbox / f"r{i:02d}.csv.manifest.json").read_text())
        assert manifest["rows"] == 20 and manifest["failed"] == 0
    assert not [p.name for p in outbox.iterdir() if p.name.startswith(".")]  # no temporary file left
