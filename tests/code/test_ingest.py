"""Ingest: every source kind, the cache, downloads, and one-line errors for broken inputs."""

from __future__ import annotations

import errno
import gzip
import http.server
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from tasks.core import files
from tasks.core.config import DataConfig
from tasks.core.errors import ReviewflowError
from tasks.core.records import ReviewTable
from tasks.core.schema import COLUMNS
from tasks.stages.ingest import ingest_reviews, review_folders, splits

# (split, polarity, id, rating) -> text; two reviews per split and label, in no particular order.
REVIEWS = {
    ("train", "pos", 12, 9): "A warm, funny film.<br /><br />Loved it.",
    ("train", "pos", 3, 7): "Good enough — café scenes are lovely.",
    ("train", "neg", 7, 1): "Dull from start to finish.",
    ("train", "neg", 10, 4): "Not my kind of movie.",
    ("test", "pos", 0, 10): "I went and saw this movie last night.",
    ("test", "pos", 5, 8): "Great acting, great plot.",
    ("test", "neg", 2, 2): "A waste of two hours.",
    ("test", "neg", 9, 3): "Forgettable.",
}
# Files of the official archive that are not labeled reviews.
IGNORED = {
    "aclImdb/README": b"Large Movie Review Dataset v1.0\n",
    "aclImdb/imdb.vocab": b"the\nand\n",
    "aclImdb/train/unsup/0_0.txt": b"unlabeled review",
    "aclImdb/train/urls_pos.txt": b"http://www.imdb.com/title/tt0453418/usercomments\n",
    "aclImdb/train/labeledBow.feat": b"9 0:9 1:1\n",
    "aclImdb/test/pos/notes.md": b"not a review\n",
}


def review_members() -> dict[str, bytes]:
    """The aclImdb layout of REVIEWS, plus the files ingest must skip."""
    members = {
        f"aclImdb/{split}/{polarity}/{rid}_{rating}.txt": text.encode("utf-8")
        for (split, polarity, rid, rating), text in REVIEWS.items()
    }
    return {**members, **IGNORED}


def build_archive(path: Path, members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> Path:
    """A .tar.gz with these regular files (directories first, as tar does), then `extra` members."""
    with tarfile.open(path, "w:gz") as archive:
        for folder in sorted({name.rsplit("/", 1)[0] for name in members}):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
        for info in extra:
            archive.addfile(info)
    return path


def build_folder(root: Path, members: dict[str, bytes]) -> Path:
    """The members written out as files below `root`."""
    for name, content in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def expected_reviews() -> pd.DataFrame:
    """REVIEWS as the table ingest should produce from an archive or folder."""
    rows = [
        (f"{split}/{polarity}/{rid}_{rating}", split, text, int(polarity == "pos"), rating)
        for (split, polarity, rid, rating), text in REVIEWS.items()
    ]
    frame = pd.DataFrame(rows, columns=COLUMNS).sort_values(["split", "review_id"], ignore_index=True)
    return frame.astype({"review_id": "str", "split": "str", "text": "str", "label": "Int64", "rating": "Int64"})


def labeled_rows(n_per_label: int = 10, with_split: bool = True) -> pd.DataFrame:
    """A small labeled table in the table format (text, label, optional review_id/split/rating)."""
    rows = []
    for label in (0, 1):
        for i in range(n_per_label):
            rows.append(
                {
                    "review_id": f"r{label}-{i:02d}",
                    "split": "train" if i % 2 == 0 else "test",
                    "text": f"review {i} with label {label}",
                    "label": label,
                    "rating": 8 if label else 2,
                }
            )
    frame = pd.DataFrame(rows)
    return frame if with_split else frame.drop(columns="split")


def run(source: Path | str, **settings: object) -> ReviewTable:
    """Ingest `source` with the cache below the test's working folder."""
    return ingest_reviews(DataConfig(source=str(source), **settings))


def read(table: ReviewTable) -> pd.DataFrame:
    return pd.read_parquet(table.path)


def one_line_error(source: Path | str, **settings: object) -> str:
    """The message of the ReviewflowError ingest raises, checked to be one line."""
    with pytest.raises(ReviewflowError) as caught:
        run(source, **settings)
    message = str(caught.value)
    assert "\n" not in message and message.strip() == message
    return message


# --- archives and folders ----------------------------------------------------------------------


def test_archive_gives_the_sorted_table_of_labeled_reviews(workdir: Path) -> None:
    archive = build_archive(workdir / "reviews.tar.gz", review_members())
    table = run(archive)
    frame = read(table)
    assert list(frame.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(frame, expected_reviews())
    assert table.rows == 8 and table.rows_per_split == {"test": 4, "train": 4}
    assert table.source == str(archive)
    assert table.path == (workdir / "data" / "cache" / f"reviews-{table.digest[:16]}.parquet").resolve()
    assert not list(table.path.parent.glob("*.tmp"))


def test_archive_digest_is_the_sha256_of_its_bytes(workdir: Path) -> None:
    import hashlib

    archive = build_archive(workdir / "reviews.tgz", review_members())
    assert run(archive).digest == hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.mark.parametrize("given", ["aclImdb", "."])
def test_extracted_folder_or_its_parent_gives_the_same_table(workdir: Path, given: str) -> None:
    build_folder(workdir / "extracted", review_members())
    table = run(workdir / "extracted" / given)
    pd.testing.assert_frame_equal(read(table), expected_reviews())
    assert table.rows_per_split == {"test": 4, "train": 4}


def test_folder_digest_follows_the_review_content(workdir: Path) -> None:
    root = build_folder(workdir / "extracted", review_members())
    first = run(root).digest
    (root / "aclImdb" / "README").write_text("changed, but not a review")
    assert run(root).digest == first
    (root / "aclImdb" / "test" / "neg" / "9_3.txt").write_text("Forgettable!")
    changed = run(root)
    assert changed.digest != first
    assert "Forgettable!" in read(changed)["text"].tolist()


def test_archive_members_may_start_with_dot_slash(workdir: Path) -> None:
    members = {f"./{name}": content for name, content in review_members().items()}
    frame = read(run(build_archive(workdir / "dot.tar.gz", members)))
    pd.testing.assert_frame_equal(frame, expected_reviews())


def test_review_file_without_rating_has_a_null_rating(workdir: Path) -> None:
    members = {**review_members(), "aclImdb/train/pos/extra.txt": b"No rating in my name."}
    frame = read(run(build_archive(workdir / "r.tar.gz", members))).set_index("review_id")
    assert pd.isna(frame.loc["train/pos/extra", "rating"])
    assert frame.loc["train/pos/extra", "label"] == 1
    assert frame.loc["train/pos/12_9", "rating"] == 9


# --- tables ------------------------------------------------------------------------------------


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """The frame in the format its file name names (pandas compresses a `.gz` name)."""
    if path.name.endswith((".csv", ".csv.gz")):
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl", ".tsv", ".csv.gz", ".jsonl.gz"])
def test_labeled_table_keeps_its_ids_splits_and_ratings(workdir: Path, suffix: str) -> None:
    given = labeled_rows()
    given.loc[0, "text"] = "NA"  # a review that happens to read like a null marker stays text
    table = run(write_table(given, workdir / f"reviews{suffix}"))
    frame = read(table)
    assert list(frame.columns) == list(COLUMNS)
    expected = given[list(COLUMNS)].sort_values(["split", "review_id"], ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected.astype(frame.dtypes.to_dict()))
    assert table.rows_per_split == {"test": 10, "train": 10}


def test_table_without_split_gets_a_deterministic_stratified_split(workdir: Path) -> None:
    source = write_table(labeled_rows(n_per_label=20, with_split=False), workdir / "nosplit.csv")
    first = read(run(source, test_fraction=0.25))
    assert first.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 5, ("test", 1): 5, ("train", 0): 15, ("train", 1): 15,
    }
    again = read(run(source, test_fraction=0.25, cache_dir=workdir / "other-cache"))
    pd.testing.assert_frame_equal(first, again)
    # The same rows shuffled would not make a split, only a seeded draw does: both splits mix ids.
    test_ids = set(first.loc[first["split"] == "test", "review_id"])
    assert test_ids != {f"r{label}-{i:02d}" for label in (0, 1) for i in range(5)}


def test_generated_split_is_cached_per_test_fraction(workdir: Path) -> None:
    source = write_table(labeled_rows(n_per_label=20, with_split=False), workdir / "nosplit.jsonl")
    quarter, half = run(source, test_fraction=0.25), run(source, test_fraction=0.5)
    assert quarter.path != half.path and quarter.digest == half.digest
    assert quarter.rows_per_split == {"test": 10, "train": 30}
    assert half.rows_per_split == {"test": 20, "train": 20}
    assert run(source, test_fraction=0.25).path == quarter.path


def test_table_without_review_id_uses_the_row_number(workdir: Path) -> None:
    given = labeled_rows().drop(columns="review_id")
    frame = read(run(write_table(given, workdir / "noid.parquet")))
    assert sorted(frame["review_id"], key=int) == [str(i) for i in range(len(given))]
    by_id = frame.set_index("review_id")
    assert by_id.loc["13", "text"] == given.loc[13, "text"]
    assert by_id.loc["13", "label"] == given.loc[13, "label"]


@pytest.mark.parametrize("missing", ["text", "label"])
def test_table_without_text_or_label_still_gives_a_table_with_nulls(workdir: Path, missing: str) -> None:
    given = labeled_rows().drop(columns=missing)
    frame = read(run(write_table(given, workdir / "partial.csv")))
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(given)
    assert frame[missing].isna().all()


def test_table_labels_as_words_and_odd_values(workdir: Path) -> None:
    source = workdir / "words.csv"
    source.write_text("text,label,rating\nfine,pos,8\nbad,Negative,\nodd,2,7.5\nnone,,x\n", encoding="utf-8")
    frame = read(run(source)).set_index("text")
    assert frame.loc["fine", "label"] == 1 and frame.loc["bad", "label"] == 0
    assert frame.loc["odd", "label"] == 2  # left for the validation step to report
    assert pd.isna(frame.loc["none", "label"])
    assert frame.loc["fine", "rating"] == 8 and frame["rating"].isna().sum() == 3


# --- cache and subsets -------------------------------------------------------------------------


def test_second_call_reads_the_cache_without_parsing(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = build_archive(workdir / "reviews.tar.gz", review_members())
    first = run(archive)
    stamp = first.path.stat().st_mtime_ns

    def must_not_parse(*args: object) -> None:
        raise AssertionError("the archive was parsed again")

    monkeypatch.setattr(review_folders, "read_archive", must_not_parse)
    second = run(archive)
    assert second == first
    assert second.path.stat().st_mtime_ns == stamp


def test_reviews_per_split_gives_a_balanced_cached_subset(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_table(labeled_rows(n_per_label=20), workdir / "reviews.parquet")
    table = run(source, reviews_per_split=6)
    assert table.path.name == f"reviews-{table.digest[:16]}-n6.parquet"
    assert (table.path.parent / f"reviews-{table.digest[:16]}.parquet").is_file()
    frame = read(table)
    assert table.rows == 12 and table.rows_per_split == {"test": 6, "train": 6}
    assert frame.groupby(["split", "label"]).size().tolist() == [3, 3, 3, 3]
    assert frame.equals(frame.sort_values(["split", "review_id"], ignore_index=True))
    full = read(run(source))
    assert set(frame["review_id"]) <= set(full["review_id"])

    monkeypatch.setattr(splits, "stratified_subset", lambda *a: pytest.fail("the subset was drawn again"))
    assert run(source, reviews_per_split=6) == table


def test_subset_takes_what_a_small_label_lacks_from_the_other() -> None:
    rows = [("a", "train", "t", 0, None)] + [(f"b{i}", "train", "t", 1, None) for i in range(9)]
    frame = pd.DataFrame(rows, columns=COLUMNS).astype({"label": "Int64", "rating": "Int64"})
    subset = splits.stratified_subset(frame, 4)
    assert subset["label"].tolist().count(0) == 1 and len(subset) == 4
    assert splits.stratified_subset(frame, 4).equals(subset)
    assert len(splits.stratified_subset(frame, 50)) == 10


# --- downloads ---------------------------------------------------------------------------------


class Server:
    """A local HTTP server: path -> (status, body, cut), where `cut` sends half the body and hangs up."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes, bool]] = {}
        self.requests: list[str] = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                status, body, cut = server.routes.get(self.path, (404, b"not found", False))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if cut else body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    served = Server()
    served.thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


def test_url_is_downloaded_once_with_progress_and_renamed_when_complete(
    workdir: Path, server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = build_archive(workdir / "built.tar.gz", review_members())
    server.routes["/data/aclImdb_small.tar.gz"] = (200, archive.read_bytes(), False)
    url = server.url("/data/aclImdb_small.tar.gz")

    table = run(url)
    downloads = workdir / "data" / "cache" / "downloads"
    assert [p.name for p in downloads.iterdir()] == ["aclImdb_small.tar.gz"]
    assert (downloads / "aclImdb_small.tar.gz").read_bytes() == archive.read_bytes()
    assert "downloading aclImdb_small.tar.gz" in capsys.readouterr().err
    pd.testing.assert_frame_equal(read(table), expected_reviews())
    assert table.source == url and table.digest == run(archive).digest

    (workdir / "data" / "cache" / f"reviews-{table.digest[:16]}.parquet").unlink()
    assert run(url) == table
    assert server.requests == ["/data/aclImdb_small.tar.gz"]


def test_url_returning_404_gives_one_line(workdir: Path, server: Server) -> None:
    url = server.url("/missing.tar.gz")
    message = one_line_error(url)
    assert url in message and "404" in message
    assert not any((workdir / "data" / "cache" / "downloads").iterdir())


def test_download_cut_midway_leaves_no_file_that_looks_complete(workdir: Path, server: Server) -> None:
    body = build_archive(workdir / "built.tar.gz", review_members()).read_bytes()
    server.routes["/cut.tar.gz"] = (200, body, True)
    message = one_line_error(server.url("/cut.tar.gz"))
    assert server.url("/cut.tar.gz") in message and f"{len(body) // 2:,} of {len(body):,} bytes" in message
    assert not list((workdir / "data" / "cache" / "downloads").iterdir())

    server.routes["/cut.tar.gz"] = (200, body, False)
    assert read(run(server.url("/cut.tar.gz"))).shape == (8, 5)


def test_unreachable_server_gives_one_line(workdir: Path) -> None:
    url = "http://127.0.0.1:9/reviews.tar.gz"  # the discard port: nothing listens there
    assert url in one_line_error(url)


def test_url_with_unknown_file_kind_is_refused_before_downloading(workdir: Path, server: Server) -> None:
    assert "unsupported dataset URL" in one_line_error(server.url("/reviews.xlsx"))
    assert server.requests == []


# --- broken inputs -----------------------------------------------------------------------------


def unsafe(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Callable[[Path], Path]:
    """A builder of an archive of good reviews followed by one unsafe member."""

    def build(folder: Path) -> Path:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        return build_archive(folder / "unsafe.tar.gz", review_members(), [info])

    return build


def truncated(keep: Callable[[int], int]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        whole = build_archive(folder / "whole.tar.gz", review_members()).read_bytes()
        path = folder / "truncated.tar.gz"
        path.write_bytes(whole[: keep(len(whole))])
        return path

    return build


def non_utf8_member(folder: Path) -> Path:
    members = {**review_members(), "aclImdb/test/neg/4_1.txt": b"caf\xe9 latin-1"}
    return build_archive(folder / "latin1.tar.gz", members)


def write(name: str, content: bytes) -> Callable[[Path], Path]:
    """A builder of a file with this content (gzip-compressed for a `.gz` name)."""
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
        return folder / name

    return build


def raw(name: str, content: bytes) -> Callable[[Path], Path]:
    """A builder of a file with exactly these bytes, whatever its name says."""
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return build


def truncated_gzip(name: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        whole = write_table(labeled_rows(n_per_label=50), folder / f"whole-{name}").read_bytes()
        return raw(name, whole[: len(whole) // 2])(folder)

    return build


def truncated_parquet(folder: Path) -> Path:
    whole = write_table(labeled_rows(), folder / "whole.parquet").read_bytes()
    return write("cut.parquet", whole[: len(whole) // 2])(folder)


def empty_folder(folder: Path) -> Path:
    (folder / "aclImdb" / "train" / "pos").mkdir(parents=True)
    return folder


BROKEN = {
    "non-utf8 csv": (write("latin1.csv", b"text,label\nok,1\ncaf\xe9,0\n"), "offset 19"),
    "non-utf8 jsonl": (write("latin1.jsonl", b'{"text": "caf\xe9", "label": 1}\n'), "offset 13"),
    "non-utf8 member": (non_utf8_member, "aclImdb/test/neg/4_1.txt"),
    "truncated tarball": (truncated(lambda n: n // 2), "truncated or corrupt"),
    "tarball without its gzip trailer": (truncated(lambda n: n - 4), "truncated or corrupt"),
    "not gzip at all": (write("plain.tar.gz", b"just some text\n" * 20), "truncated or corrupt"),
    "parent-relative member": (unsafe("../evil.txt"), "unsafe member '../evil.txt'"),
    "nested parent-relative member": (unsafe("aclImdb/train/../../evil.txt"), "unsafe member"),
    "absolute member": (unsafe("/tmp/evil.txt"), "unsafe member '/tmp/evil.txt'"),
    "symlink member": (unsafe("aclImdb/train/pos/99_9.txt", tarfile.SYMTYPE, "/etc/passwd"), "unsafe member"),
    "hardlink member": (unsafe("aclImdb/link.txt", tarfile.LNKTYPE, "aclImdb/README"), "unsafe member"),
    "device member": (unsafe("aclImdb/dev", tarfile.CHRTYPE), "unsafe member 'aclImdb/dev'"),
    "empty archive": (lambda folder: build_archive(folder / "empty.tar.gz", {}), "no labeled reviews"),
    "archive without reviews": (lambda f: build_archive(f / "other.tar.gz", IGNORED), "no labeled reviews"),
    "empty aclImdb folder": (empty_folder, "no labeled reviews"),
    "unknown extension": (write("reviews.xlsx", b"PK\x03\x04"), "unsupported dataset file"),
    "bad jsonl line": (write("bad.jsonl", b'{"text": "a", "label": 1}\n\n{"text": "b", "label": 0\n'), "line 3"),
    "jsonl line not an object": (write("list.jsonl", b'{"text": "a", "label": 1}\n[1, 2]\n'), "line 2"),
    "truncated parquet": (truncated_parquet, "not a readable Parquet file"),
    "empty csv": (write("empty.csv", b""), "not a readable CSV file"),
    "non-utf8 csv.gz": (write("latin1.csv.gz", b"text,label\nok,1\ncaf\xe9,0\n"), "offset 19"),
    "non-utf8 jsonl.gz": (write("latin1.jsonl.gz", b'{"text": "caf\xe9", "label": 1}\n'), "offset 13"),
    "bad jsonl.gz line": (write("bad.jsonl.gz", b'{"text": "a", "label": 1}\n\n{"text": "b", "label": 0\n'), "line 3"),
    "jsonl.gz line not an object": (write("list.jsonl.gz", b'{"text": "a", "label": 1}\n[1, 2]\n'), "line 2"),
    "truncated csv.gz": (truncated_gzip("cut.csv.gz"), "not a readable gzip stream (EOFError"),
    "truncated jsonl.gz": (truncated_gzip("cut.jsonl.gz"), "not a readable gzip stream (EOFError"),
    "csv.gz not gzip at all": (raw("plain.csv.gz", b"text,label\nok,1\n"), "not a readable gzip stream (BadGzipFile"),
    "empty csv.gz": (raw("empty.csv.gz", b""), "not a readable CSV file"),
    "gzip of an empty csv": (write("nothing.csv.gz", b""), "not a readable CSV file"),
    "bad tsv row": (write("shifted.tsv", b"text\tlabel\nok\t1\nbad\t0\textra\n"), "not a readable TSV file"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_broken_input_gives_one_line_naming_it(workdir: Path, case: str) -> None:
    build, expected = BROKEN[case]
    folder = workdir / "inputs"
    folder.mkdir()
    source = build(folder)
    message = one_line_error(source)
    assert str(source) in message or str(source / "aclImdb") in message
    assert expected in message
    cache = workdir / "data" / "cache"
    assert not list(cache.glob("*.parquet")) and not list(cache.glob(".*.tmp"))


def test_missing_path_is_named(workdir: Path) -> None:
    assert one_line_error(workdir / "nowhere.tar.gz") == f"dataset not found: {workdir / 'nowhere.tar.gz'}"


def test_csv_offset_is_the_byte_offset_in_the_file(workdir: Path) -> None:
    content = ("text,label\n" + "é fine review,1\n" * 5000).encode("utf-8") + b"\xff,0\n"
    (workdir / "big.csv").write_bytes(content)
    offset = content.index(b"\xff")
    assert f"byte 0xff at offset {offset}" in one_line_error(workdir / "big.csv")
    (workdir / "bom.csv").write_bytes(b"\xef\xbb\xbf" + content)
    assert f"offset {offset + 3}" in one_line_error(workdir / "bom.csv")


def test_csv_with_byte_order_mark_keeps_its_column_names(workdir: Path) -> None:
    (workdir / "bom.csv").write_bytes("\ufefftext,label,split\ngreat film,1,train\n".encode("utf-8"))
    frame = read(run(workdir / "bom.csv"))
    assert frame[["text", "label", "split"]].values.tolist() == [["great film", 1, "train"]]


def test_unsafe_member_is_refused_even_before_any_review(workdir: Path) -> None:
    with tarfile.open(workdir / "evil.tar.gz", "w:gz") as archive:
        archive.addfile(tarfile.TarInfo("../evil.txt"), io.BytesIO(b""))
    message = one_line_error(workdir / "evil.tar.gz")
    assert message == f"unsafe member '../evil.txt' in archive {workdir / 'evil.tar.gz'}: refusing to read it"
    assert not (workdir.parent / "evil.txt").exists()


def test_json_lines_keep_unicode_line_separators_inside_strings(workdir: Path) -> None:
    line = json.dumps({"text": "one\u2028two", "label": 1, "split": "train"}, ensure_ascii=False)
    (workdir / "sep.jsonl").write_text(line + "\n", encoding="utf-8")
    assert read(run(workdir / "sep.jsonl"))["text"].tolist() == ["one\u2028two"]


def test_unsupported_url_scheme_gives_one_line(workdir: Path) -> None:
    assert "ftp://example.org/x.tar.gz" in one_line_error("ftp://example.org/x.tar.gz")


def test_no_temporary_files_are_left_in_the_cache(workdir: Path) -> None:
    run(build_archive(workdir / "reviews.tar.gz", review_members()), reviews_per_split=2)
    names = sorted(os.listdir(workdir / "data" / "cache"))
    # The full table and its subset; the archive's unlabeled review (IGNORED's train/unsup/), and those kept for pretraining.
    assert len(names) == 4 and all(n.startswith(("reviews-", "unlabeled-")) and n.endswith(".parquet") for n in names)


def test_an_archive_expanding_past_the_limit_is_refused_while_streaming(workdir: Path) -> None:
    archive = build_archive(workdir / "reviews.tar.gz", review_members())
    message = one_line_error(archive, max_archive_bytes=4096)
    assert message.startswith(f"archive {archive} expands past data.max_archive_bytes (4,096 bytes)")
    assert "decompression bomb" in message and not list((workdir / "data" / "cache").glob("*.parquet"))
    assert run(archive, max_archive_bytes=1 << 20).rows == 8


class FullDisk(io.FileIO):
    """A file on a disk that fills up after `room` bytes."""

    room = 200

    def write(self, data: bytes) -> int:
        if self.tell() + len(data) > self.room:
            super().write(bytes(data)[: self.room - self.tell()])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_a_full_disk_while_writing_the_cache_leaves_no_partial_table(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = build_archive(workdir / "reviews.tar.gz", review_members())
    monkeypatch.setattr(files, "open", lambda path, mode: io.BufferedWriter(FullDisk(path, mode)), raising=False)
    message = one_line_error(archive)
    assert message.startswith(f"cannot access {workdir / 'data' / 'cache'}/reviews-") and "No space left on device" in message
    assert os.listdir(workdir / "data" / "cache") == []
    monkeypatch.undo()
    assert run(archive).rows == 8
