"""Validate the training table with Great Expectations before anything trains on it.

One expectation suite covers the whole table ("table: ..." failures) and, through row
conditions on `split`, each split ("train: ...", "test: ..."): row counts, class balance and
unique review ids are checked on that split's rows only, for both splits even when one has no
rows. The result goes to `<report_dir>/validation.json` and to a Data Docs site kept by a
file-backed GX project in `<report_dir>/gx/`; reruns in the same folder update that project.
Unlabeled reviews (for pretraining), when there are any, have a suite of their own ("unlabeled: ...")
in the same project and report: its result, with how many were kept and left out, in
`<report_dir>/validation-unlabeled.json`.

Great Expectations runs through `tasks.core.expectations`, which imports it only when needed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import task

from tasks.core.caching import cache_key, file_digest, reused, section
from tasks.core.config import ValidationConfig
from tasks.core.errors import ReviewflowError
from tasks.core.expectations import import_gx, readable, run_suite
from tasks.core.files import write_json
from tasks.core.records import UnlabeledReviews, ValidationReport
from tasks.core.schema import COLUMNS, SPLITS

if TYPE_CHECKING:
    from great_expectations.expectations import Expectation

log = logging.getLogger("reviewflow")

POSITIVE_MIN_RATING = 7  # IMDB: positive reviews are rated 7-10, negative ones 1-4
NEGATIVE_MAX_RATING = 4

_NAME = "reviews"  # the GX datasource, suite, validation definition and checkpoint
_RESULT_FILE = "validation.json"
_UNLABELED = "unlabeled"  # the same names for the unlabeled reviews' suite
_UNLABELED_RESULT_FILE = "validation-unlabeled.json"


def validate_reviews(
    table_path: Path, rules: ValidationConfig, report_dir: Path, unlabeled: UnlabeledReviews | None = None
) -> ValidationReport:
    """Validate the training table (and the unlabeled reviews, if any) with Great Expectations; write the
    result JSON and Data Docs under report_dir; raise ReviewflowError naming every failed expectation if any failed."""
    df = _read(Path(table_path))
    unlabeled_df = _read(unlabeled.path) if unlabeled else None
    report = check_reviews(df, rules, report_dir, unlabeled_df, unlabeled.dropped if unlabeled else 0)
    if not report.success:
        count = len(report.failures)
        listed = "; ".join(report.failures) or "see the report"
        raise ReviewflowError(
            f"data validation failed ({count} expectation{'s' if count != 1 else ''}): {listed}"
            f" — report: {report.result_path}"
        )
    unlabeled_note = f", {report.unlabeled_rows} unlabeled ({report.unlabeled_dropped} left out)" if unlabeled else ""
    log.info("data validation passed: %d rows%s; report %s", len(df), unlabeled_note, report.docs_path or report.result_path)
    return report


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise ReviewflowError(f"cannot read the table to validate {path}: {reason}") from None


def check_reviews(
    df: pd.DataFrame, rules: ValidationConfig, report_dir: Path, unlabeled: pd.DataFrame | None = None, unlabeled_dropped: int = 0
) -> ValidationReport:
    """Run the suite on `df` (and the unlabeled suite on `unlabeled`), write the result JSON and the Data Docs,
    and report; never raises for bad data (a missing column is a failed expectation, not an exception)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    run = run_suite(_NAME, build_expectations(rules), df, project_dir=report_dir)
    result_path = report_dir / _RESULT_FILE
    write_json(result_path, readable(run.result))
    report = ValidationReport(success=run.success, result_path=result_path, docs_path=run.docs_path, failures=run.failures)
    if unlabeled is None:
        return report
    extra = run_suite(_UNLABELED, unlabeled_expectations(rules), unlabeled, project_dir=report_dir)
    counts = {"kept": len(unlabeled), "left_out_equal_to_a_labeled_review": unlabeled_dropped}
    write_json(report_dir / _UNLABELED_RESULT_FILE, {"reviews": counts, "result": readable(extra.result)})
    return report.model_copy(update={
        "success": report.success and extra.success, "failures": report.failures + extra.failures,
        "docs_path": extra.docs_path or report.docs_path, "unlabeled_rows": len(unlabeled), "unlabeled_dropped": unlabeled_dropped,
    })


def unlabeled_expectations(rules: ValidationConfig) -> list[Expectation]:
    """The unlabeled reviews' suite: text present and of a reviewable length, ids unique (they carry no label, split or rating)."""
    gxe = import_gx().expectations
    scope = {"scope": _UNLABELED}
    return [
        gxe.ExpectColumnToExist(column="text", meta=scope),
        gxe.ExpectColumnValuesToNotBeNull(column="text", meta=scope),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=rules.min_text_chars, max_value=rules.max_text_chars, meta=scope),
        gxe.ExpectColumnValuesToBeUnique(column="review_id", meta=scope),
    ]


def build_expectations(rules: ValidationConfig) -> list[Expectation]:
    """The suite, in report order. `meta["scope"]` names what a failure concerns."""
    gxe = import_gx().expectations
    from great_expectations.expectations.row_conditions import Column

    table = {"scope": "table"}
    expectations: list[Expectation] = [gxe.ExpectColumnToExist(column=c, meta=table) for c in COLUMNS]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column="review_id", meta=table),
        gxe.ExpectColumnValuesToNotBeNull(column="split", meta=table),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS), meta=table),
        gxe.ExpectColumnValuesToNotBeNull(column="text", meta=table),
        gxe.ExpectColumnValueLengthsToBeBetween(
            column="text", min_value=rules.min_text_chars, max_value=rules.max_text_chars, meta=table
        ),
        gxe.ExpectColumnValuesToNotBeNull(column="label", meta=table),
        gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1], meta=table),
        # Ratings may be missing (null passes); where present they must agree with the label.
        gxe.ExpectColumnValuesToBeBetween(column="rating", min_value=1, max_value=10, meta=table),
        gxe.ExpectColumnValuesToBeBetween(
            column="rating",
            min_value=POSITIVE_MIN_RATING,
            row_condition=Column("label") == 1,
            meta={**table, "where": "label == 1"},
            notes=f"Positive reviews (label 1) are rated {POSITIVE_MIN_RATING} or more.",
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="rating",
            max_value=NEGATIVE_MAX_RATING,
            row_condition=Column("label") == 0,
            meta={**table, "where": "label == 0"},
            notes=f"Negative reviews (label 0) are rated {NEGATIVE_MAX_RATING} or less.",
        ),
    ]
    for split in SPLITS:
        rows = Column("split") == split
        scope = {"scope": split}
        expectations += [
            gxe.ExpectTableRowCountToBeBetween(
                min_value=rules.min_rows_per_split, max_value=rules.max_rows_per_split, row_condition=rows, meta=scope
            ),
            gxe.ExpectColumnMeanToBeBetween(
                column="label",
                min_value=rules.min_positive_fraction,
                max_value=rules.max_positive_fraction,
                row_condition=rows,
                meta=scope,
                notes="The mean label is the share of positive reviews (class balance).",
            ),
            gxe.ExpectColumnValuesToBeUnique(column="review_id", row_condition=rows, meta=scope),
        ]
    return expectations


def validate_key(table_digest: str, rules: ValidationConfig, code: str, unlabeled_digest: str | None = None) -> str:
    return cache_key("validate", table=table_digest, validation=section(rules), code=code, unlabeled=unlabeled_digest)


def validate_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    table, unlabeled = Path(inputs["table_path"]), inputs.get("unlabeled")
    if not table.is_file() or (unlabeled and not unlabeled.path.is_file()):
        return None
    unlabeled_digest = f"{file_digest(unlabeled.path)}-{unlabeled.dropped}" if unlabeled else None
    return validate_key(file_digest(table), inputs["rules"], code, unlabeled_digest)


validate_task = task(validate_reviews, name="validate", **reused(validate_inputs_key))
