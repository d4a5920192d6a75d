"""The Great Expectations checks a scoring input must pass before any row is scored.

It must have a `text` column, and, when it has an id column, every row needs an id and no id
may repeat. Only the header and the ids are checked, so the check costs a byte per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.core.expectations import import_gx, run_suite
from tasks.core.formats import Layout
from tasks.core.schema import TEXT


def input_problems(layout: Layout) -> str | None:
    """Why the input cannot be scored, as one line ("; " between problems), or None when it can."""
    run = run_suite("scoring", _expectations(layout), _frame(layout))
    return "; ".join(run.failures) or None


def _expectations(layout: Layout) -> list:
    gxe = import_gx().expectations
    shown = ", ".join(layout.columns[:10]) or "none"
    more = ", ..." if len(layout.columns) > 10 else ""
    expectations = [gxe.ExpectColumnToExist(column=TEXT, meta={"failure": _literal(f"no {TEXT!r} column (columns: {shown}{more})")})]
    if layout.id_column:
        expectations += [
            gxe.ExpectColumnValuesToNotBeNull(column=layout.id_column, meta={"failure": "{rows} without an id in {column!r}"}),
            gxe.ExpectColumnValuesToBeUnique(
                column=layout.id_column, meta={"failure": "duplicate ids in {column!r} ({count} rows, e.g. {examples})"}
            ),
        ]
    return expectations


def _frame(layout: Layout) -> pd.DataFrame:
    """The ids, with a blank id as a missing one; other columns matter only by name, so a byte per row stands in."""
    frame = pd.DataFrame({c: np.zeros(layout.rows, dtype=bool) for c in layout.columns})
    if layout.id_column:
        ids = layout.ids.reset_index(drop=True).astype(object)
        frame[layout.id_column] = ids.mask(ids.map(lambda v: isinstance(v, str) and not v.strip()), None)
    return frame


def _literal(text: str) -> str:
    """`text` as a failure template that fills in nothing (column names may hold braces)."""
    return text.replace("{", "{{").replace("}", "}}")
