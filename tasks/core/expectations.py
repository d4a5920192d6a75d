"""The one place that runs Great Expectations: quiet contexts, a suite on a DataFrame, one-line failures.

Great Expectations is imported inside the functions: it takes about two seconds to import,
and the CLI should not pay that for commands that never validate.

A failure reads `scope: expectation_type(column) where CONDITION` from the expectation's
`meta` (`scope`, `where`), or, when `meta["failure"]` holds a template, that template filled
with `{column}`, `{count}` (unexpected rows), `{rows}` ("1 row", "2 rows") and `{examples}`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pandas as pd

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations import Expectation

# GX contexts are not documented as thread-safe; a scoring validation takes milliseconds.
_LOCK = threading.Lock()


@dataclass
class SuiteRun:
    success: bool
    result: ExpectationSuiteValidationResult  # results in the suite's order
    failures: list[str]  # one line per failed expectation
    docs_path: Path | None  # index.html of the Data Docs site (file projects only)


def import_gx() -> Any:
    """Import GX with its logging quiet: it logs routine steps at INFO, even while importing,
    and one module logs under its file path instead of its name. Levels set elsewhere win."""
    _quiet_logger("great_expectations")
    import great_expectations as gx
    from great_expectations.data_context import data_context_variables

    _quiet_logger(data_context_variables.__file__)
    return gx


def run_suite(name: str, expectations: list[Expectation], frame: pd.DataFrame, project_dir: Path | None = None) -> SuiteRun:
    """Validate `frame` against `expectations`; with `project_dir`, in a file project there that
    keeps a Data Docs site (reruns update it), else in a throwaway in-memory context."""
    gx = import_gx()
    with _LOCK:
        context = _context(gx, project_dir)
        suite = context.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
        batch = context.data_sources.add_or_update_pandas(name).add_dataframe_asset("frame")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch.add_batch_definition_whole_dataframe("whole"), suite=suite)
        )
        actions = [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")] if project_dir else []
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=name, validation_definitions=[definition], actions=actions,
                result_format={"result_format": "SUMMARY"},
            )
        )
        (result,) = checkpoint.run(batch_parameters={"dataframe": frame}).run_results.values()
        docs = _docs_index(context) if project_dir else None
    # GX returns results in its own order; report them in the suite's.
    order = {expectation.id: i for i, expectation in enumerate(suite.expectations)}
    result.results.sort(key=lambda r: order.get(r.expectation_config.id, len(order)))
    failures = [describe_failure(r) for r in result.results if not r.success]
    return SuiteRun(bool(result.success), result, failures, docs)


def describe_failure(result: Any) -> str:
    """One line for a failed expectation (see the module's docstring)."""
    config = result.expectation_config
    meta, column = config.meta or {}, config.kwargs.get("column")
    text = config.type + (f"({column})" if column else "")
    if meta.get("where"):
        text += f" where {meta['where']}"
    if raised_error(result):
        return f"{_scope(meta)}{text} (not evaluated)"
    if meta.get("failure"):
        count = (result.result or {}).get("unexpected_count") or 0
        examples = list(dict.fromkeys((result.result or {}).get("partial_unexpected_list") or []))[:3]
        rows = f"{count} row{'s' if count != 1 else ''}"
        return meta["failure"].format(column=column, count=count, rows=rows, examples=", ".join(map(repr, examples)))
    return f"{_scope(meta)}{text}"


def raised_error(result: Any) -> bool:
    """Whether the expectation could not be evaluated (GX keeps metric errors under one key per metric)."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return True
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def readable(result: ExpectationSuiteValidationResult) -> dict[str, Any]:
    """The result as JSON, with GX's internal tracebacks cut down to their messages."""
    data = result.to_json_dict()
    for item in data.get("results", []):
        info = item.get("exception_info") or {}
        entries = info.values() if not info.get("raised_exception") else [info]
        for entry in entries:
            if isinstance(entry, dict):
                entry.pop("exception_traceback", None)
    return data


def _scope(meta: dict[str, Any]) -> str:
    return f"{meta['scope']}: " if meta.get("scope") else ""


def _context(gx: Any, project_dir: Path | None) -> AbstractDataContext:
    """A context without progress bars or analytics; a file project saves that, so its config shows the intent."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX's own module sets this logger to INFO, and it logs a line per ephemeral context.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    if project_dir is None:
        context = gx.get_context(mode="ephemeral")
    else:
        context = gx.get_context(mode="file", project_root_dir=project_dir)
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    context.variables.analytics_enabled = False
    if project_dir is not None:
        context.variables.save()
    return context


def _docs_index(context: AbstractDataContext) -> Path | None:
    for site in context.get_docs_sites_urls():
        url = site.get("site_url") or ""
        if url.startswith("file://"):
            path = Path(unquote(urlparse(url).path))
            if path.is_file():
                return path
    return None


def _quiet_logger(name: str) -> None:
    logger = logging.getLogger(name)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
