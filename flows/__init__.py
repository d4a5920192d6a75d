"""Prefect flows and the `reviewflow` CLI."""

import os

# Before Prefect and TensorFlow are imported: route the tasks' `reviewflow` logger into the
# flow-run logs, and keep TensorFlow's C++ start-up chatter out of them.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "reviewflow")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# No phoning home: these machines often have no network, and the failures fill the logs.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
