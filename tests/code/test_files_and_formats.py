"""The shared pieces under ingest and scoring: format detection, atomic writes, free names."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import pytest

from tasks.core.files import atomic_write, new_folder, remove_stale_temporaries, temporary_sibling, write_json
from tasks.core.formats import FORMATS, FormatError, format_of, split_name
from tasks.scoring.safety import free_name


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("r.csv", ".csv"), ("r.tsv", ".tsv"), ("r.jsonl", ".jsonl"), ("r.parquet", ".parquet"),
        ("r.csv.gz", ".csv.gz"), ("R.JSONL.GZ", ".jsonl.gz"), ("my.data.csv", ".csv"), ("my.data.csv.gz", ".csv.gz"),
        ("r.gz", None), ("r.tar.gz", None), ("r.parquet.gz", None), (".csv", None), ("csv", None), ("r.txt", None),
    ],
)
def test_a_format_is_found_by_the_whole_compound_suffix(name: str, suffix: str | None) -> None:
    fmt = format_of(name)
    assert (fmt.suffix if fmt else None) == suffix


def test_each_suffix_has_one_entry() -> None:
    suffixes = [f.suffix for f in FORMATS]
    assert len(suffixes) == len(set(suffixes)) and all(s == s.lower() for s in suffixes)


def test_split_name_keeps_the_suffix_as_written() -> None:
    assert split_name("Reviews.2024.CSV.GZ", format_of("x.csv.gz")) == ("Reviews.2024", ".CSV.GZ")


def test_the_fingerprint_hashes_stored_bytes_and_checks_the_decompressed_text(tmp_path: Path) -> None:
    fmt = format_of("r.csv.gz")
    source = tmp_path / "r.csv.gz"
    source.write_bytes(gzip.compress(b"text\nfine\n"))
    fingerprint = fmt.fingerprint(source)
    assert fingerprint.sha256 == hashlib.sha256(source.read_bytes()).hexdigest() and fingerprint.content_bytes == 10
    source.write_bytes(gzip.compress(b"text\ncaf\xe9\n"))
    with pytest.raises(FormatError, match=r"^not UTF-8 \(byte 0xe9 at offset 8\)$"):
        fmt.fingerprint(source)


def test_atomic_write_appears_whole_with_nothing_left_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_write(target) as file:
        file.write(b"complete")
        assert not target.exists() and [p.name.startswith(".out.bin.") for p in tmp_path.iterdir()] == [True]
    assert target.read_bytes() == b"complete" and os.listdir(tmp_path) == ["out.bin"]


def test_a_failed_atomic_write_keeps_the_old_file_and_removes_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write(b"half")
        raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bin"]


def test_an_os_error_without_a_file_name_is_given_the_target(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught, atomic_write(tmp_path / "out.bin"):
        raise OSError(28, "No space left on device")
    assert caught.value.filename == str(tmp_path / "out.bin") and os.listdir(tmp_path) == []


def test_write_json_is_utf8_and_indented(tmp_path: Path) -> None:
    write_json(tmp_path / "m.json", {"name": "été", "path": tmp_path})
    text = (tmp_path / "m.json").read_text(encoding="utf-8")
    assert json.loads(text) == {"name": "été", "path": str(tmp_path)} and "été" in text and text.endswith("}\n")


def test_temporary_siblings_name_their_process_and_are_removed_once_it_is_gone(tmp_path: Path) -> None:
    mine = temporary_sibling(tmp_path / "r.csv")
    assert mine.parent == tmp_path and mine.name.startswith(f".r.csv.{os.getpid()}-") and mine.suffix == ".tmp"
    mine.write_text("in progress")
    dead = tmp_path / ".r.csv.999999999-0123abcd.tmp"
    dead.write_text("left by a killed run")
    remove_stale_temporaries(tmp_path)
    assert mine.exists() and not dead.exists()


def test_free_name_counts_up_and_keeps_a_compound_suffix_whole(tmp_path: Path) -> None:
    assert free_name(tmp_path / "r.csv.gz") == tmp_path / "r.csv.gz"
    (tmp_path / "r.csv.gz").write_text("")
    (tmp_path / "r-1.csv.gz.reason.txt").write_text("")
    assert free_name(tmp_path / "r.csv.gz", ".reason.txt") == tmp_path / "r-2.csv.gz"
    assert free_name(tmp_path / "r.csv.gz") == tmp_path / "r-1.csv.gz"
    (tmp_path / "notes").write_text("")
    assert free_name(tmp_path / "notes") == tmp_path / "notes-1"


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path: Path) -> None:
    folders = [new_folder(tmp_path / "runs", "smoke-20261204-130059") for _ in range(3)]
    assert [f.name for f in folders] == ["smoke-20261204-130059", "smoke-20261204-130059-2", "smoke-20261204-130059-3"]
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)
