"""Batch scoring of review files: formats, streaming, malformed inputs, exactly-once and the inbox.

Plain functions stand in for the models here (the registered models are tested end to end
elsewhere): `rnn` scores a text by its length, `bigru` by its share of vowels.
"""

from __future__ import annotations

import errno
import glob
import gzip
import hashlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core import files
from tasks.core.errors import ReviewflowError
from tasks.core.records import FileOutcome
from tasks.scoring.core import Limits, score_file, score_inbox
from tasks.scoring.discovery import find_review_files

VERSIONS = {"rnn": "3", "bigru": "7"}


def rnn_probability(text: str) -> float:
    return min(1.0, len(text) / 100)


def bigru_probability(text: str) -> float:
    return sum(c in "aeiou" for c in text.lower()) / len(text)


class Recorder:
    """Scorers that remember every batch they were given (or append it to a file, across processes)."""

    def __init__(self, log_file: Path | None = None, fail_on_call: int | None = None) -> None:
        self.batches: list[list[str]] = []
        self.log_file, self.fail_on_call = log_file, fail_on_call

    def _seen(self, texts: list[str]) -> None:
        self.batches.append(list(texts))
        if self.fail_on_call is not None and len(self.batches) == self.fail_on_call:
            raise RuntimeError("model crashed")
        if self.log_file is not None:
            with self.log_file.open("a", encoding="utf-8") as out:
                out.write("".join(json.dumps(t) + "\n" for t in texts))

    def rnn(self, texts: list[str]) -> np.ndarray:
        self._seen(texts)
        return np.array([rnn_probability(t) for t in texts])

    def bigru(self, texts: list[str]) -> np.ndarray:
        return np.array([bigru_probability(t) for t in texts])

    @property
    def scorers(self) -> dict:
        return {"rnn": self.rnn, "bigru": self.bigru}

    @property
    def texts(self) -> list[str]:
        return [t for batch in self.batches for t in batch]


REVIEWS = [
    ("r1", "A warm, funny film. Loved it."),
    ("r2", "Dull from start to finish, and far too long for what it had to say."),
    ("r3", "Great acting, great plot — café scenes are lovely."),
    ("r4", "Forgettable."),
]


def write_input(path: Path, records: list[dict]) -> Path:
    """Write records in the format the file name names (pandas gzips a `.csv.gz` by its name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(records)
    if path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        write_bytes(path, "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"))
    return path


def write_bytes(path: Path, content: bytes) -> Path:
    """Write `content` as the file's content: gzip-compressed for a `.gz` name."""
    path.write_bytes(gzip.compress(content) if path.name.endswith(".gz") else content)
    return path


def read_output(path: Path) -> pd.DataFrame:
    if path.name.endswith((".csv", ".tsv", ".csv.gz")):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype={"review_id": str, "id": str})
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return pd.DataFrame([json.loads(line) for line in content.decode("utf-8").splitlines()])


def score(path: Path, out: Path, recorder: Recorder | None = None, chunk_size: int = 1000, **kwargs) -> FileOutcome:
    return score_file(path, out, (recorder or Recorder()).scorers, VERSIONS, chunk_size, **kwargs)


def check_scores(frame: pd.DataFrame, texts: list[str]) -> None:
    """Probabilities follow the stand-in formulas, the ensemble is their mean, sentiment follows it."""
    assert list(frame.columns[1:]) == ["prob_rnn", "prob_bigru", "prob_ensemble", "sentiment", "error"]
    expected_rnn = [rnn_probability(t) for t in texts]
    expected_bigru = [bigru_probability(t) for t in texts]
    np.testing.assert_allclose(frame["prob_rnn"], expected_rnn)
    np.testing.assert_allclose(frame["prob_bigru"], expected_bigru)
    np.testing.assert_allclose(frame["prob_ensemble"], (np.array(expected_rnn) + expected_bigru) / 2)
    assert list(frame["sentiment"]) == ["positive" if (a + b) / 2 >= 0.5 else "negative" for a, b in zip(expected_rnn, expected_bigru)]
    assert frame["error"].fillna("").eq("").all()


def quarantined(outcome: FileOutcome, out: Path) -> str:
    """The one-line reason, checked against the reason file beside the quarantined copy."""
    assert outcome.status == "quarantined" and outcome.output is None and outcome.rows == 0
    assert outcome.reason and "\n" not in outcome.reason
    name = outcome.input.name
    assert (out / "quarantine" / f"{name}.reason.txt").read_text(encoding="utf-8") == outcome.reason + "\n"
    assert os.path.lexists(out / "quarantine" / name)
    stem = glob.escape(outcome.input.name.split(".")[0])
    assert not list(out.glob(f"{stem}.scored.*")) and not (out / f"{name}.manifest.json").exists()
    return outcome.reason


def no_temporaries(*folders: Path) -> bool:
    return not [p for folder in folders if folder.exists() for p in folder.rglob("*.tmp")]


# --- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_column"),
    [
        ("reviews.csv", "review_id"), ("reviews.tsv", "id"), ("reviews.jsonl", "review_id"), ("reviews.parquet", None),
        ("reviews.csv.gz", "id"), ("reviews.jsonl.gz", "review_id"),
    ],
)
def test_each_format_round_trips_with_ids_order_scores_and_manifest(workdir: Path, name: str, id_column: str | None) -> None:
    records = [{**({id_column: rid} if id_column else {}), "text": text, "stars": 3} for rid, text in reversed(REVIEWS)]
    source = write_input(workdir / "in" / name, records)
    recorder = Recorder()

    outcome = score(source, workdir / "out", recorder)

    output = workdir / "out" / name.replace("reviews.", "reviews.scored.")
    no_reference = {"rnn": {"reference": None}, "bigru": {"reference": None}}  # versions without a drift reference: none measured
    assert outcome == FileOutcome(
        input=source, status="scored", output=output, rows=4, failed_rows=0, reason=None, seconds=outcome.seconds,
        drift=no_reference, drifted=False,
    )
    frame = read_output(output)
    texts = [r["text"] for r in records]
    if id_column:
        assert frame.columns[0] == id_column and list(frame[id_column]) == [r[id_column] for r in records]
    else:
        assert frame.columns[0] == "row" and list(frame["row"]) == [0, 1, 2, 3]
    check_scores(frame, texts)
    assert recorder.texts == texts
    manifest = json.loads((workdir / "out" / f"{name}.manifest.json").read_text())
    assert manifest["input"] == os.path.abspath(source)
    assert manifest["input_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert manifest["versions"] == VERSIONS and manifest["output"] == output.name
    assert (manifest["rows"], manifest["scored"], manifest["failed"]) == (4, 4, 0)
    assert manifest["started"] <= manifest["finished"] and manifest["finished"].endswith("+00:00")
    assert source.exists() and no_temporaries(workdir)
    if name.endswith(".gz"):
        assert output.read_bytes()[:2] == b"\x1f\x8b", "a gzip input gives a gzip output"


def test_parquet_output_keeps_the_id_type(workdir: Path) -> None:
    source = write_input(workdir / "ids.parquet", [{"id": 10 + i, "text": t} for i, (_, t) in enumerate(REVIEWS)])
    score(source, workdir / "out")
    table = pq.read_table(workdir / "out" / "ids.scored.parquet")
    assert table.schema.field("id").type == pa.int64() and table.column("id").to_pylist() == [10, 11, 12, 13]


def test_txt_folder_is_one_input_sorted_by_name_with_stems_as_ids(workdir: Path) -> None:
    folder = workdir / "texts"
    folder.mkdir()
    for rid, text in REVIEWS:
        (folder / f"{rid}.txt").write_text(text, encoding="utf-8")
    (folder / "notes.md").write_text("not a review")

    assert find_review_files([folder]) == [folder]
    outcome = score(folder, workdir / "out")

    assert outcome.status == "scored" and outcome.output == workdir / "out" / "texts.scored.csv"
    frame = read_output(outcome.output)
    assert list(frame["review_id"]) == ["r1", "r2", "r3", "r4"]
    check_scores(frame, [t for _, t in REVIEWS])
    assert json.loads((workdir / "out" / "texts.manifest.json").read_text())["rows"] == 4


def test_find_review_files_takes_files_and_searches_folders_one_level(workdir: Path) -> None:
    inbox = workdir / "inbox"
    for name in ("b.jsonl", "a.csv", "c.parquet", "notes.md", ".hidden.csv", "deep/x.csv"):
        (inbox / name).parent.mkdir(parents=True, exist_ok=True)
        (inbox / name).write_text("text\nhi\n")
    (inbox / "texts").mkdir()
    (inbox / "texts" / "1.txt").write_text("hello")
    single = write_input(workdir / "single.tsv", [{"text": "hi"}])

    found = find_review_files([single, inbox, single])

    assert found == [single, inbox / "a.csv", inbox / "b.jsonl", inbox / "c.parquet", inbox / "texts"]


def test_find_review_files_names_a_missing_path_in_one_line(workdir: Path) -> None:
    with pytest.raises(ReviewflowError, match="not found: .*missing dir") as error:
        find_review_files([workdir / "missing dir"])
    assert "\n" not in str(error.value)
    (workdir / "notes.md").write_text("x")
    with pytest.raises(ReviewflowError, match="unsupported review file"):
        find_review_files([workdir / "notes.md"])


# --- streaming -------------------------------------------------------------------------------------


def test_chunks_of_any_size_give_the_same_output_and_bound_each_model_call(workdir: Path) -> None:
    records = [{"review_id": f"id{i:05d}", "text": f"review number {i} " + "ab" * (i % 60)} for i in range(2500)]
    source = write_input(workdir / "big.csv", records)
    small, large = Recorder(), Recorder()

    score(source, workdir / "small", small, chunk_size=1000)
    score(source, workdir / "large", large, chunk_size=10000)

    assert [len(b) for b in small.batches] == [1000, 1000, 500]
    assert [len(b) for b in large.batches] == [2500]
    assert (workdir / "small/big.scored.csv").read_bytes() == (workdir / "large/big.scored.csv").read_bytes()
    check_scores(read_output(workdir / "small/big.scored.csv"), [r["text"] for r in records])


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv.gz", ".jsonl.gz"])
def test_streaming_formats_bound_each_model_call_too(workdir: Path, suffix: str) -> None:
    records = [{"id": i, "text": f"text {i}"} for i in range(25)]
    recorder = Recorder()
    outcome = score(write_input(workdir / f"f{suffix}", records), workdir / "out", recorder, chunk_size=10)
    assert outcome.rows == 25 and [len(b) for b in recorder.batches] == [10, 10, 5]
    assert list(read_output(outcome.output)["id"].astype(int)) == list(range(25))


# --- malformed inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.parquet", "empty.csv.gz", "empty.jsonl.gz"])
def test_an_empty_file_is_quarantined(workdir: Path, name: str) -> None:
    source = workdir / name
    source.write_bytes(b"")
    assert quarantined(score(source, workdir / "out"), workdir / "out") == "empty file"
    assert source.exists(), "score_file quarantines a copy"


@pytest.mark.parametrize("name", ["nothing.csv.gz", "nothing.jsonl.gz"])
def test_a_gzip_file_of_nothing_is_an_empty_file(workdir: Path, name: str) -> None:
    source = write_bytes(workdir / name, b"")
    assert source.stat().st_size > 0
    assert quarantined(score(source, workdir / "out"), workdir / "out") == "empty file"


def test_a_header_only_csv_gives_an_output_without_rows(workdir: Path) -> None:
    source = workdir / "header.csv"
    source.write_text("review_id,text\n")
    recorder = Recorder()
    outcome = score(source, workdir / "out", recorder)
    assert (outcome.status, outcome.rows, outcome.failed_rows) == ("scored", 0, 0) and recorder.batches == []
    assert outcome.output.read_text().splitlines() == ["review_id,prob_rnn,prob_bigru,prob_ensemble,sentiment,error"]
    assert json.loads((workdir / "out" / "header.csv.manifest.json").read_text())["rows"] == 0


def test_an_empty_parquet_table_gives_an_output_without_rows(workdir: Path) -> None:
    source = workdir / "none.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())}), source)
    outcome = score(source, workdir / "out")
    assert (outcome.status, outcome.rows) == ("scored", 0)
    assert pq.read_table(outcome.output).schema.names == ["id", "prob_rnn", "prob_bigru", "prob_ensemble", "sentiment", "error"]


@pytest.mark.parametrize("name", ["notext.csv", "notext.jsonl", "notext.parquet", "notext.csv.gz", "notext.jsonl.gz"])
def test_a_file_without_a_text_column_is_quarantined_naming_it(workdir: Path, name: str) -> None:
    source = write_input(workdir / name, [{"id": "1", "review": "Great film."}])
    reason = quarantined(score(source, workdir / "out"), workdir / "out")
    assert reason.startswith("no 'text' column") and "review" in reason


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".csv.gz", ".jsonl.gz"])
def test_duplicate_ids_are_quarantined(workdir: Path, suffix: str) -> None:
    source = write_input(workdir / f"dupes{suffix}", [{"review_id": r, "text": "fine text"} for r in ("a", "b", "a")])
    reason = quarantined(score(source, workdir / "out"), workdir / "out")
    assert reason == "duplicate ids in 'review_id' (2 rows, e.g. 'a')"


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_missing_ids_are_quarantined(workdir: Path, gz: str) -> None:
    source = write_bytes(workdir / f"blank.csv{gz}", b"id,text\n1,good film\n,bad film\n   ,meh film\n")
    assert quarantined(score(source, workdir / "out"), workdir / "out") == "2 rows without an id in 'id'"
    lines = write_bytes(workdir / f"nulls.jsonl{gz}", b'{"id": 1, "text": "good"}\n{"text": "no id here"}\n')
    assert score(lines, workdir / "out").reason == "1 row without an id in 'id'"


def test_unscorable_rows_keep_their_place_with_a_reason(workdir: Path) -> None:
    source = workdir / "rows.jsonl"
    lines = [
        {"id": 1, "text": "A fine film."},
        {"id": 2, "text": ""},
        {"id": 3, "text": "   \t\n "},
        {"id": 4, "text": 12345},
        {"id": 5, "text": 1.5},
        {"id": 6, "text": True},
        {"id": 7, "text": None},
        {"id": 8, "text": "12345 !!!"},
        {"id": 9},
        {"id": 10, "text": "Ünïcödé wörds ok"},
    ]
    source.write_text("\n".join(json.dumps(r) for r in lines) + "\n\n", encoding="utf-8")
    recorder = Recorder()

    outcome = score(source, workdir / "out", recorder)

    assert (outcome.status, outcome.rows, outcome.failed_rows) == ("scored", 10, 8)
    frame = read_output(outcome.output)
    assert list(frame["id"]) == list(range(1, 11))
    assert list(frame["error"]) == [
        "", "empty text", "empty text", "not text: int", "not text: float", "not text: bool", "not text: null",
        "no words", "no text", "",
    ]
    failed = frame["error"] != ""
    assert frame.loc[failed, ["prob_rnn", "prob_bigru", "prob_ensemble", "sentiment"]].isna().all().all()
    assert recorder.texts == ["A fine film.", "Ünïcödé wörds ok"]
    manifest = json.loads((workdir / "out" / "rows.jsonl.manifest.json").read_text())
    assert (manifest["rows"], manifest["scored"], manifest["failed"]) == (10, 2, 8)


def test_csv_numbers_and_blank_texts_are_row_errors(workdir: Path) -> None:
    source = workdir / "rows.csv"
    source.write_text('id,text\n1,12345\n2,""\n3,"   "\n4,NA\n5,Good\n6\n', encoding="utf-8")
    recorder = Recorder()
    frame = read_output(score(source, workdir / "out", recorder).output)
    assert list(frame["error"].fillna("")) == ["no words", "empty text", "empty text", "", "", "empty text"]
    assert recorder.texts == ["NA", "Good"]


@pytest.mark.parametrize("name", ["latin1.csv", "latin1.csv.gz", "latin1.jsonl.gz"])
def test_non_utf8_bytes_are_quarantined_naming_the_offset(workdir: Path, name: str) -> None:
    # In a gzip file, the offset counts the decompressed text: that is where the bad byte is.
    head = "text\nCafé au lait, très bien\n".encode()
    source = write_bytes(workdir / name, head + "Crème brûlée".encode("latin-1") + b"\n")
    reason = quarantined(score(source, workdir / "out"), workdir / "out")
    assert reason == f"not UTF-8 (byte 0xe8 at offset {len(head) + 2})"


def test_non_utf8_offset_counts_bytes_across_read_blocks(workdir: Path) -> None:
    source = workdir / "long.jsonl"
    # A two-byte character straddles the 1 MiB read block, then a bad byte follows much later.
    prefix = b'{"text": "' + b"a" * ((1 << 20) - 11) + "é".encode() + b"b" * 100
    source.write_bytes(prefix + b"\xff" + b'"}\n')
    assert score(source, workdir / "out").reason == f"not UTF-8 (byte 0xff at offset {len(prefix)})"
    folder = workdir / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("fine")
    (folder / "b.txt").write_bytes(b"ok \x80")
    assert score(folder, workdir / "out").reason == "b.txt: not UTF-8 (byte 0x80 at offset 3)"
    cut = workdir / "cut.csv"
    cut.write_bytes(b"text\nok\ncaf\xc3")
    assert score(cut, workdir / "out").reason == "not UTF-8 (byte 0xc3 at offset 11)"


def test_quoted_newlines_and_commas_in_csv_texts_are_kept(workdir: Path) -> None:
    texts = ['Line one,\nline two, "quoted"', "Plain, with commas, many", "Tabs\tand\r\nCRLF"]
    source = write_input(workdir / "quoted.csv", [{"review_id": str(i), "text": t} for i, t in enumerate(texts)])
    recorder = Recorder()
    outcome = score(source, workdir / "out", recorder)
    assert outcome.rows == 3 and recorder.texts == texts
    check_scores(read_output(outcome.output), texts)


def test_a_row_with_more_fields_than_the_header_is_quarantined(workdir: Path) -> None:
    source = workdir / "shifted.csv"
    source.write_text("review_id,text\n1,good film\n2,bad, very bad film\n")
    assert quarantined(score(source, workdir / "out"), workdir / "out") == (
        "not a readable CSV file (ParserError: Error tokenizing data. C error: Expected 2 fields in line 3, saw 3)"
    )


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_bad_json_lines_are_quarantined(workdir: Path, gz: str) -> None:
    lines = write_bytes(workdir / f"bad.jsonl{gz}", b'{"text": "fine"}\n\n{"text": oops}\n')
    assert score(lines, workdir / "out").reason == "line 3: not valid JSON (Expecting value, column 10)"
    array = write_bytes(workdir / f"array.jsonl{gz}", b'["text"]\n')
    assert score(array, workdir / "out").reason == "line 1: expected a JSON object, got list"


@pytest.mark.parametrize("name", ["cut.csv.gz", "cut.jsonl.gz"])
def test_a_truncated_or_corrupt_gzip_stream_is_quarantined(workdir: Path, name: str) -> None:
    whole = write_input(workdir / name, [{"id": i, "text": f"review number {i}"} for i in range(200)]).read_bytes()
    for content, detail in [(whole[: len(whole) // 2], "EOFError"), (whole[:-4], "EOFError"), (b"plain text\n" * 5, "BadGzipFile")]:
        (workdir / name).write_bytes(content)
        reason = quarantined(score(workdir / name, workdir / "out"), workdir / "out")
        assert reason.startswith(f"not a readable gzip stream ({detail}") and "\n" not in reason
        for entry in (workdir / "out" / "quarantine").iterdir():
            files.remove(entry)


def test_a_truncated_parquet_is_quarantined(workdir: Path) -> None:
    table = write_input(workdir / "cut.parquet", [{"text": t} for _, t in REVIEWS])
    table.write_bytes(table.read_bytes()[:-20])
    reason = score(table, workdir / "out").reason
    assert reason.startswith("not a readable Parquet file (ArrowInvalid:") and "\n" not in reason


def test_a_one_megabyte_review_is_scored(workdir: Path) -> None:
    text = ("A long and winding review. " * 40_000)[:1_000_000]
    source = write_input(workdir / "huge.csv", [{"text": text}, {"text": "short one"}])
    recorder = Recorder()
    outcome = score(source, workdir / "out", recorder)
    assert outcome.rows == 2 and [len(t) for t in recorder.texts] == [1_000_000, 9]
    assert list(read_output(outcome.output)["row"]) == [0, 1]


def test_names_with_spaces_and_unicode_work(workdir: Path) -> None:
    inbox = workdir / "in box"
    source = write_input(inbox / "critiques été 2024 ✓.csv", [{"text": t} for _, t in REVIEWS])
    outcomes = score_inbox(inbox, workdir / "out put", workdir / "archive", Recorder().scorers, VERSIONS, 100)
    assert [o.status for o in outcomes] == ["scored"]
    assert (workdir / "out put" / "critiques été 2024 ✓.scored.csv").is_file()
    assert (workdir / "out put" / "critiques été 2024 ✓.csv.manifest.json").is_file()
    assert (workdir / "archive" / source.name).is_file() and not source.exists()


def test_inputs_of_one_name_in_two_formats_keep_apart(workdir: Path) -> None:
    csv = write_input(workdir / "in" / "r.csv", [{"text": t} for _, t in REVIEWS])
    lines = write_input(workdir / "in" / "r.jsonl", [{"text": t} for _, t in REVIEWS[:2]])
    out = workdir / "out"
    assert [score(p, out).rows for p in (csv, lines)] == [4, 2]
    assert [score(p, out).status for p in (csv, lines)] == ["skipped", "skipped"]
    assert json.loads((out / "r.csv.manifest.json").read_text())["output"] == "r.scored.csv"
    assert json.loads((out / "r.jsonl.manifest.json").read_text())["output"] == "r.scored.jsonl"


def test_files_still_being_copied_in_are_not_inputs(workdir: Path) -> None:
    inbox = workdir / "inbox"
    write_input(inbox / "done.csv", [{"text": "a complete file"}])
    write_input(inbox / ".copying.csv", [{"text": "half a fi"}])
    (inbox / "copying.csv.part").write_text("text\nhalf a fi")
    (inbox / "UPLOAD.CSV.PART").write_text("text\nhalf a fi")
    assert find_review_files([inbox]) == [inbox / "done.csv"]
    outcomes = score_inbox(inbox, workdir / "out", workdir / "archive", Recorder().scorers, VERSIONS, 100)
    assert [(o.input.name, o.status) for o in outcomes] == [("done.csv", "scored")]
    assert sorted(p.name for p in inbox.iterdir()) == [".copying.csv", ".locks", "UPLOAD.CSV.PART", "copying.csv.part"]


class FullDisk(io.FileIO):
    """A file on a disk that fills up after `room` bytes."""

    room = 100

    def write(self, data: bytes) -> int:
        if self.tell() + len(data) > self.room:
            super().write(bytes(data)[: self.room - self.tell()])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def full_disk_open(path: Path, mode: str) -> io.BufferedWriter:
    return io.BufferedWriter(FullDisk(path, mode))


@pytest.mark.parametrize("name", ["r.csv", "r.csv.gz", "r.jsonl", "r.parquet"])
def test_a_full_disk_while_writing_leaves_no_partial_output(workdir: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_input(workdir / name, [{"id": i, "text": f"review number {i} " * 20} for i in range(300)])
    monkeypatch.setattr(files, "open", full_disk_open, raising=False)
    with pytest.raises(ReviewflowError, match="cannot write .*r.scored.* No space left on device") as error:
        score(source, workdir / "out", chunk_size=50)
    assert "\n" not in str(error.value)
    assert os.listdir(workdir / "out") == [] and source.exists()


# --- limits ---------------------------------------------------------------------------------------


def test_an_input_over_the_size_limit_is_quarantined_and_the_others_go_on(workdir: Path) -> None:
    inbox, out = workdir / "inbox", workdir / "out"
    write_input(inbox / "big.csv", [{"text": f"review number {i}"} for i in range(200)])
    # Small on disk, large once decompressed: the limit counts the content.
    write_bytes(inbox / "bomb.csv.gz", b"text\n" + b"a" * 100_000 + b"\n")
    write_input(inbox / "small.csv", [{"text": "a short one"}])
    limits = Limits(max_file_bytes=2000)
    outcomes = score_inbox(inbox, out, workdir / "archive", Recorder().scorers, VERSIONS, 100, limits)
    assert [(o.input.name, o.status) for o in outcomes] == [
        ("big.csv", "quarantined"), ("bomb.csv.gz", "quarantined"), ("small.csv", "scored"),
    ]
    assert {quarantined(o, out) for o in outcomes[:2]} == {"larger than the limit of 2,000 bytes"}


def test_a_review_over_the_length_limit_keeps_its_row_with_an_error(workdir: Path) -> None:
    source = write_input(workdir / "r.jsonl", [{"id": 1, "text": "short and fine"}, {"id": 2, "text": "far too long " * 10}])
    recorder = Recorder()
    outcome = score(source, workdir / "out", recorder, limits=Limits(max_review_chars=100))
    frame = read_output(outcome.output)
    assert (outcome.rows, outcome.failed_rows) == (2, 1) and recorder.texts == ["short and fine"]
    assert list(frame["error"]) == ["", "too long (130 characters, limit 100)"]
    assert frame.loc[1, ["prob_rnn", "prob_bigru", "prob_ensemble", "sentiment"]].isna().all()


# --- exactly once ----------------------------------------------------------------------------------


def test_a_second_run_skips_and_a_new_model_version_scores_again(workdir: Path) -> None:
    source = write_input(workdir / "r.csv", [{"text": t} for _, t in REVIEWS])
    recorder = Recorder()
    first = score(source, workdir / "out", recorder)
    second = score(source, workdir / "out", recorder)
    assert second.status == "skipped" and second.reason == "already scored by the same model versions"
    assert (second.output, second.rows) == (first.output, 4) and len(recorder.batches) == 1

    third = score_file(source, workdir / "out", recorder.scorers, {**VERSIONS, "bigru": "8"}, 1000)
    assert third.status == "scored" and len(recorder.batches) == 2
    assert json.loads((workdir / "out" / "r.csv.manifest.json").read_text())["versions"]["bigru"] == "8"

    source.write_text(source.read_text() + "One more review.\n")
    assert score_file(source, workdir / "out", recorder.scorers, {**VERSIONS, "bigru": "8"}, 1000).rows == 5


def test_an_output_without_its_manifest_is_scored_again(workdir: Path) -> None:
    source = write_input(workdir / "r.csv", [{"text": t} for _, t in REVIEWS])
    score(source, workdir / "out")
    (workdir / "out" / "r.csv.manifest.json").unlink()
    assert score(source, workdir / "out").status == "scored"


def test_a_model_crash_midway_leaves_nothing_visible_and_the_next_run_completes(workdir: Path) -> None:
    inbox, out, archive = workdir / "inbox", workdir / "out", workdir / "archive"
    source = write_input(inbox / "r.parquet", [{"id": i, "text": f"review {i}"} for i in range(50)])

    with pytest.raises(RuntimeError, match="model crashed"):
        score_inbox(inbox, out, archive, Recorder(fail_on_call=3).scorers, VERSIONS, 10)

    assert source.exists() and not archive.exists()
    assert [p.name for p in out.iterdir()] == [] and no_temporaries(workdir)
    assert list((inbox / ".locks").iterdir()) == []
    recorder = Recorder()
    (outcome,) = score_inbox(inbox, out, archive, recorder.scorers, VERSIONS, 10)
    assert (outcome.status, outcome.rows) == ("scored", 50) and len(recorder.texts) == 50
    assert (archive / "r.parquet").exists() and not source.exists()
    assert list(read_output(out / "r.scored.parquet")["id"]) == list(range(50))


def test_a_killed_runs_temporary_file_is_ignored_and_cleaned_up(workdir: Path) -> None:
    out = workdir / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out / f".r.scored.csv.{int(dead.stdout)}-0123abcd.tmp"
    live = out / f".other.scored.csv.{os.getpid()}-0123abcd.tmp"
    stale.write_text("half a file")
    live.write_text("another run is writing this")
    outcome = score(write_input(workdir / "r.csv", [{"text": "fine"}]), out)
    assert outcome.status == "scored" and not stale.exists() and live.exists()


def test_inbox_archives_scored_files_quarantines_bad_ones_and_never_overwrites(workdir: Path) -> None:
    inbox, out, archive = workdir / "inbox", workdir / "out", workdir / "archive"
    write_input(inbox / "good.csv", [{"text": t} for _, t in REVIEWS])
    (inbox / "bad.csv").write_bytes(b"")
    (inbox / "notes.md").write_text("left alone")
    write_input(archive / "good.csv", [{"text": "an older file of the same name"}])

    outcomes = score_inbox(inbox, out, archive, Recorder().scorers, VERSIONS, 100)

    assert [(o.input.name, o.status) for o in outcomes] == [("bad.csv", "quarantined"), ("good.csv", "scored")]
    assert sorted(p.name for p in inbox.iterdir()) == [".locks", "notes.md"]
    assert sorted(p.name for p in archive.iterdir()) == ["good-1.csv", "good.csv"]
    assert (out / "quarantine" / "bad.csv").exists() and (out / "quarantine" / "bad.csv.reason.txt").exists()

    # The same content dropped in again is not scored again, but it is archived.
    write_input(inbox / "good.csv", [{"text": t} for _, t in REVIEWS])
    (again,) = score_inbox(inbox, out, archive, Recorder().scorers, VERSIONS, 100)
    assert again.status == "skipped" and (archive / "good-2.csv").exists()


def test_inbox_refuses_symlinks_to_outside_without_reading_them(workdir: Path) -> None:
    inbox, out = workdir / "inbox", workdir / "out"
    secret = write_input(workdir / "private" / "secret.csv", [{"text": "a private text"}])
    inbox.mkdir()
    (inbox / "evil.csv").symlink_to(secret)
    (inbox / "folder").mkdir()
    (inbox / "folder" / "a.txt").write_text("an honest review")
    (inbox / "folder" / "b.txt").symlink_to(secret)
    write_input(inbox / "real.csv", [{"text": "an inside review"}])
    (inbox / "alias.csv").symlink_to(inbox / "real.csv")
    recorder = Recorder()

    outcomes = score_inbox(inbox, out, workdir / "archive", recorder.scorers, VERSIONS, 100)

    status = {o.input.name: (o.status, o.reason) for o in outcomes}
    refused = ("quarantined", "symlink to outside the inbox refused")
    assert status == {"alias.csv": ("scored", None), "evil.csv": refused, "folder": refused, "real.csv": ("scored", None)}
    assert "a private text" not in recorder.texts and "an honest review" not in recorder.texts
    assert (out / "quarantine" / "evil.csv").is_symlink() and secret.read_text() == "text\na private text\n"
    assert quarantined(next(o for o in outcomes if o.input.name == "evil.csv"), out).startswith("symlink")


def _run_inbox(folders: list[str], barrier) -> list[tuple[str, str]]:
    inbox, out, archive, log_file = map(Path, folders)
    recorder = Recorder(log_file=log_file)
    barrier.wait()
    return [(o.input.name, o.status) for o in score_inbox(inbox, out, archive, recorder.scorers, VERSIONS, 5)]


def test_two_concurrent_inbox_runs_score_every_file_exactly_once(workdir: Path) -> None:
    inbox, out, archive, log_file = workdir / "inbox", workdir / "out", workdir / "archive", workdir / "scored.log"
    names = [f"batch {i}.csv" for i in range(6)]
    for i, name in enumerate(names):
        write_input(inbox / name, [{"review_id": f"{i}-{j}", "text": f"review {j} of file {i}"} for j in range(40)])
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    barrier = manager.Barrier(2)
    folders = [str(inbox), str(out), str(archive), str(log_file)]

    with context.Pool(2) as pool:
        runs = [pool.apply_async(_run_inbox, (folders, barrier)) for _ in range(2)]
        results = [run.get(timeout=120) for run in runs]

    scored = sorted(name for result in results for name, status in result if status == "scored")
    assert scored == sorted(names)
    texts = [json.loads(line) for line in log_file.read_text(encoding="utf-8").splitlines()]
    assert len(texts) == len(set(texts)) == 6 * 40
    assert sorted(p.name for p in archive.iterdir()) == sorted(names)
    assert sorted(p.name for p in out.glob("*.manifest.json")) == sorted(f"{n}.manifest.json" for n in names)
    assert [p.name for p in inbox.iterdir()] == [".locks"] and no_temporaries(workdir)


# --- the registered ensemble -------------------------------------------------------------------------


def test_prob_ensemble_is_the_registered_ensemble_s_and_the_manifest_says_which(workdir: Path) -> None:
    """A member whose pinned version is a column is read from it; another is scored by its own pinned version."""
    from models.ensemble import Stacker
    from tasks.scoring.rows import EnsembleScorer

    source = write_input(workdir / "in" / "r.csv", [{"review_id": rid, "text": text} for rid, text in REVIEWS] + [{"review_id": "r5", "text": " "}])
    recorder = Recorder()
    stacker = Stacker(("rnn", "bigru"), (1.5, -0.5), 0.25)
    ensemble = EnsembleScorer(
        version="reviewflow-ensemble/2", stacker=stacker, members={"rnn": "reviewflow-rnn/3", "bigru": "reviewflow-bigru/6"},
        scorers={"bigru": lambda texts: np.full(len(texts), 0.5)},  # bigru/6 is not the column's bigru/7
    )
    versions = {"rnn": "reviewflow-rnn/3", "bigru": "reviewflow-bigru/7", "ensemble": "reviewflow-ensemble/2"}
    outcome = score_file(source, workdir / "out", recorder.scorers, versions, 1000, ensemble=ensemble)

    assert outcome.status == "scored" and outcome.failed_rows == 1
    frame = read_output(workdir / "out" / "r.scored.csv")
    texts = [text for _, text in REVIEWS]
    expected = stacker.predict({"rnn": np.array([rnn_probability(t) for t in texts]), "bigru": np.full(4, 0.5)})
    np.testing.assert_allclose(frame["prob_ensemble"][:4], expected)
    assert np.isnan(frame["prob_ensemble"][4]) and frame["error"][4] == "empty text"
    assert list(frame["sentiment"][:4]) == ["positive" if p >= 0.5 else "negative" for p in expected]
    assert recorder.texts == texts  # the rnn column was computed once, and reused by the ensemble
    manifest = json.loads((workdir / "out" / "r.csv.manifest.json").read_text())
    assert manifest["versions"] == versions
    assert manifest["prob_ensemble"] == {
        "source": "registered ensemble", "model": "reviewflow-ensemble/2", "members": ensemble.members,
        "weights": {"rnn": 1.5, "bigru": -0.5}, "intercept": 0.25,
    }

    only = score_file(source, workdir / "only", {}, {"ensemble": "reviewflow-ensemble/2"}, 1000,
                      ensemble=EnsembleScorer("reviewflow-ensemble/2", stacker, ensemble.members,
                                              {"rnn": recorder.rnn, "bigru": lambda texts: np.full(len(texts), 0.5)}))
    assert only.status == "scored"
    alone = read_output(workdir / "only" / "r.scored.csv")
    assert list(alone.columns) == ["review_id", "prob_ensemble", "sentiment", "error"]
    np.testing.assert_allclose(alone["prob_ensemble"][:4], expected)


def test_without_a_registered_ensemble_the_manifest_says_prob_ensemble_is_the_mean(workdir: Path) -> None:
    source = write_input(workdir / "in" / "r.csv", [{"text": text} for _, text in REVIEWS])
    score(source, workdir / "out")
    manifest = json.loads((workdir / "out" / "r.csv.manifest.json").read_text())
    assert manifest["prob_ensemble"] == {"source": "mean", "of": ["prob_rnn", "prob_bigru"]}


def test_an_ensemble_member_with_neither_column_nor_scorer_is_refused(workdir: Path) -> None:
    from models.ensemble import Stacker
    from tasks.scoring.rows import EnsembleScorer

    ensemble = EnsembleScorer("reviewflow-ensemble/2", Stacker(("rnn", "bilstm"), (1.0, 1.0), 0.0), {})
    with pytest.raises(ReviewflowError, match=r"members \['bilstm'\] have neither a column nor a scorer"):
        score_file(workdir / "r.csv", workdir / "out", Recorder().scorers, {**VERSIONS, "ensemble": "e/2"}, 10, ensemble=ensemble)
