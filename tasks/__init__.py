"""Prefect tasks: plain functions for each stage, with a thin Prefect decoration."""

import logging

# Prefect forwards the `reviewflow` logger (PREFECT_LOGGING_EXTRA_LOGGERS) to the flow-run
# logs but leaves its level unset, and task worker processes would then drop INFO lines
# such as per-epoch progress.
logging.getLogger("reviewflow").setLevel(logging.INFO)
