"""Validate the training table with Great Expectations before anything trains on it.

One expectation suite covers the whole table ("table: ..." failures) and, through row
conditions on `split`, each split ("train: ...", "test: ..."): row counts, class balance and
unique review ids are checked on that split's rows only, for both splits even when one has no
rows. The result goes to `<report_dir>/validation.json` and to a Data Docs site kept by a
file-backed GX project in `<report_dir>/gx/`; reruns in the same folder update that project.

Great Expectations is imported inside the functions: it takes about two seconds to import,
and the CLI should not pay that for commands that never validate.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd
from prefect import task

from tasks.caching import reused, validate_inputs_key
from tasks.config import ValidationConfig
from tasks.errors import ReviewflowError
from tasks.records import ValidationReport
from tasks.schema import COLUMNS, SPLITS

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import FileDataContext
    from great_expectations.expectations import Expectation

log = logging.getLogger("reviewflow")

POSITIVE_MIN_RATING = 7  # IMDB: positive reviews are rated 7-10, negative ones 1-4
NEGATIVE_MAX_RATING = 4

_NAME = "reviews"  # the GX datasource, suite, validation definition and checkpoint
_RESULT_FILE = "validation.json"


def validate_reviews(table_path: Path, rules: ValidationConfig, report_dir: Path) -> ValidationReport:
    """Validate the training table with Great Expectations; write the result JSON and Data Docs
    under report_dir; raise ReviewflowError naming every failed expectation if any failed."""
    table_path = Path(table_path)
    try:
        df = pd.read_parquet(table_path)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or exc.__class__.__name__
        raise ReviewflowError(f"cannot read the table to validate {table_path}: {reason}") from None
    report = check_reviews(df, rules, report_dir)
    if not report.success:
        count = len(report.failures)
        listed = "; ".join(report.failures) or "see the report"
        raise ReviewflowError(
            f"data validation failed ({count} expectation{'s' if count != 1 else ''}): {listed}"
            f" — report: {report.result_path}"
        )
    log.info("data validation passed: %d rows; report %s", len(df), report.docs_path or report.result_path)
    return report


def check_reviews(df: pd.DataFrame, rules: ValidationConfig, report_dir: Path) -> ValidationReport:
    """Run the suite on `df`, write validation.json and the Data Docs, and report; never raises
    for bad data (a missing column is a failed expectation, not an exception)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    gx = import_gx()

    context = gx.get_context(mode="file", project_root_dir=report_dir)
    _configure(context)
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=_NAME, expectations=build_expectations(rules)))
    batch = (
        context.data_sources.add_or_update_pandas(_NAME)
        .add_dataframe_asset("table")
        .add_batch_definition_whole_dataframe("whole table")
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=_NAME, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=_NAME,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "SUMMARY"},
        )
    )
    checkpoint_result = checkpoint.run(batch_parameters={"dataframe": df})
    (result,) = checkpoint_result.run_results.values()

    # GX returns results in its own order; report them in the suite's.
    order = {expectation.id: i for i, expectation in enumerate(suite.expectations)}
    result.results.sort(key=lambda r: order.get(r.expectation_config.id, len(order)))
    result_path = report_dir / _RESULT_FILE
    _write_json(result_path, _readable(result))
    failed = [r for r in result.results if not r.success]
    return ValidationReport(
        success=bool(result.success),
        result_path=result_path,
        docs_path=_docs_index(context),
        failures=[_describe_failure(r) for r in failed],
    )


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


def _describe_failure(result: Any) -> str:
    """`scope: expectation_type(column)`, plus the row condition and why it could not run."""
    config = result.expectation_config
    meta = config.meta or {}
    column = config.kwargs.get("column")
    text = f"{meta.get('scope', 'table')}: {config.type}" + (f"({column})" if column else "")
    if meta.get("where"):
        text += f" where {meta['where']}"
    if raised_error(result):
        text += " (not evaluated)"
    return text


def raised_error(result: Any) -> bool:
    """GX keeps metric errors under one key per metric, not at the top of exception_info."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _readable(result: ExpectationSuiteValidationResult) -> dict[str, Any]:
    """The result as JSON, with GX's internal tracebacks cut down to their messages."""
    data = result.to_json_dict()
    for item in data.get("results", []):
        info = item.get("exception_info") or {}
        entries = info.values() if not info.get("raised_exception") else [info]
        for entry in entries:
            if isinstance(entry, dict):
                entry.pop("exception_traceback", None)
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(partial, path)


def _docs_index(context: FileDataContext) -> Path | None:
    for site in context.get_docs_sites_urls():
        url = site.get("site_url") or ""
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            if path.is_file():
                return path
    return None


def _configure(context: FileDataContext) -> None:
    """No progress bars, no analytics; saved in the project so the config shows the intent."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.analytics_enabled = False
    context.variables.save()


def import_gx() -> Any:
    """Import GX with its logging quiet: it logs routine steps at INFO, even while importing,
    and one module logs under its file path instead of its name. Levels set elsewhere win."""
    _quiet_logger("great_expectations")
    import great_expectations as gx
    from great_expectations.data_context import data_context_variables

    _quiet_logger(data_context_variables.__file__)
    return gx


def _quiet_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


validate_task = task(validate_reviews, name="validate", **reused(validate_inputs_key))
