"""The `reviewflow` command line."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

import flows  # noqa: F401  (sets logging and TensorFlow environment before Prefect loads)
from models.architectures import SCORING_MODELS
from tasks.core.config import PROFILES, ScoringConfig, TrackingConfig, describe_validation_error, load_config, tracking_settings
from tasks.core.errors import ReviewflowError, interrupted, one_line
from tasks.core.servers import prefect_api


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reviewflow", description="Train, compare, register and apply IMDB sentiment models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="run the training flow")
    _config_options(train_cmd)
    train_cmd.add_argument("--fresh", action="store_true",
                           help="compute everything again instead of reusing earlier runs' work (same as --set reuse=false)")
    train_cmd.set_defaults(run=run_train)
    score_cmd = commands.add_parser("score", help="score review files once with the registered models")
    score_cmd.add_argument("paths", nargs="+", metavar="PATH", help="review files (.csv .tsv .jsonl .parquet) or folders")
    score_cmd.add_argument("--output", required=True, metavar="DIR", help="folder for the scored files and manifests")
    score_cmd.add_argument("--alias", default=None, help="registry alias of the versions to use (default: champion)")
    score_cmd.add_argument("--models", default=",".join(SCORING_MODELS),
                           help="models to score with; `ensemble` gives prob_ensemble from the registered ensemble, or the "
                           "mean of the others when none holds the alias (default: all five and the ensemble)")
    score_cmd.add_argument("--chunk-size", type=int, default=None, metavar="N", help="rows scored at a time")
    score_cmd.add_argument("--shadow", default=None, metavar="ALIAS",
                           help="also score with the versions holding this alias (e.g. challenger): shadow_prob_<model> columns "
                           "and their agreement in the manifest; a model without such a version is skipped (default: none)")
    score_cmd.add_argument("--dask", default=None, metavar="ADDRESS",
                           help="score the chunks on the workers of this Dask scheduler (tcp://host:8786); the same output bytes "
                           "(same as --set scoring.dask_address=ADDRESS; default: in this process)")
    score_cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="scoring.KEY=VALUE",
                           help="override one scoring setting, e.g. --set scoring.drift_threshold=0.3 (repeatable)")
    score_cmd.set_defaults(run=run_score)
    serve_cmd = commands.add_parser("serve", help="serve the train and score deployments to PREFECT_API_URL")
    _config_options(serve_cmd)
    serve_cmd.set_defaults(run=run_serve)
    up_cmd = commands.add_parser("up", help="start MLflow and Prefect servers and serve the deployments (or put them on servers.work_pool)")
    _config_options(up_cmd)
    up_cmd.set_defaults(run=run_up)
    deploy_cmd = commands.add_parser("deploy", help="put the train and score deployments on the work pool servers.work_pool at PREFECT_API_URL")
    _config_options(deploy_cmd)
    deploy_cmd.set_defaults(run=run_deploy)
    worker_cmd = commands.add_parser("worker", help="run flow runs of the work pool servers.work_pool (a Prefect process worker)")
    _config_options(worker_cmd)
    worker_cmd.add_argument("--name", default=None, help="the worker's name in the Prefect UI (default: Prefect's)")
    worker_cmd.set_defaults(run=run_worker)
    report_cmd = commands.add_parser("report", help="the results table of a recorded training (and its ablations), from MLflow")
    report_cmd.add_argument("run_id", metavar="RUN_ID", help="a training's MLflow parent run id, `latest` or `latest:<profile>`")
    report_cmd.add_argument("--ablation", action="append", default=[], metavar="RUN_ID",
                            help="a training that changes some settings: the table says what each change was worth (repeatable)")
    report_cmd.add_argument("--write", type=Path, metavar="FILE",
                            help="put the tables between FILE's `<!-- results:<profile> -->` and `<!-- /results:<profile> -->`")
    report_cmd.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    report_cmd.set_defaults(run=run_report)
    models_cmd = commands.add_parser("models", help="every registered version: aliases, test figures and the gate's verdicts")
    models_cmd.set_defaults(run=run_models)
    promote_cmd = commands.add_parser("promote", help="move `champion` to a version by hand, past the gate; recorded on the version")
    promote_cmd.add_argument("model", metavar="MODEL", help=f"an architecture ({', '.join(SCORING_MODELS)}) or its registered name")
    promote_cmd.add_argument("version", metavar="VERSION", help="the registered version to make champion")
    promote_cmd.add_argument("--reason", required=True, help="why: recorded on the version with who and when (required)")
    promote_cmd.set_defaults(run=run_promote)
    bench_cmd = commands.add_parser("bench", help="benchmarks side by side with the notebook's way; also an MLflow run in reviewflow-bench")
    bench_cmd.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (under 15 minutes on 2 cores)")
    bench_cmd.add_argument("--only", metavar="NAME,...", help="run only these benchmarks (default: all)")
    bench_cmd.add_argument("--threads", type=int, metavar="N",
                           help="threads for each side of train_* and efficiency (default: every core)")
    bench_cmd.add_argument("--models", metavar="NAME,...", help="the champions the scoring benchmarks score with (default: the four recurrent)")
    bench_cmd.add_argument("--json", type=Path, metavar="PATH", help="also write the figures as JSON")
    bench_cmd.add_argument("--write", type=Path, metavar="FILE",
                           help="put the table between FILE's `<!-- results:bench -->` and `<!-- /results:bench -->`")
    bench_cmd.add_argument("--section", default="bench", metavar="NAME",
                           help="with --write: between `<!-- results:NAME -->` and `<!-- /results:NAME -->` instead")
    bench_cmd.add_argument("--table", nargs="+", metavar="RUN_ID",
                           help="instead, the table of these recorded bench runs (MLflow run ids; a benchmark in several: the last)")
    bench_cmd.add_argument("--profile", metavar="FLOW_RUN", nargs="?", const="latest",
                           help="instead, show where a training flow run's time went (default: the latest), from Prefect's record")
    bench_cmd.set_defaults(run=run_bench)
    args = parser.parse_args(argv)
    # SIGTERM (a scheduler, `kill`) interrupts like Ctrl-C, so a training records how it ended.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return args.run(args)
    except ReviewflowError as exc:
        print(f"reviewflow: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Exception) as exc:
        if interrupted(exc):
            print("reviewflow: interrupted", file=sys.stderr)
            return 130
        # A bug, not bad input: the log above has the traceback.
        print(f"reviewflow: error: {one_line(exc, 300)} (see the log above)", file=sys.stderr)
        return 1


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="default", choices=list(PROFILES), help="settings profile (default: default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one setting, e.g. --set train.epochs=2 (repeatable)")


def run_serve(args: argparse.Namespace) -> int:
    from flows.deployments import serve_deployments

    serve_deployments(load_config(args.profile, args.overrides))
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from flows.deployments import deploy_deployments

    config = load_config(args.profile, args.overrides)
    deploy_deployments(config)
    print(f"deployments train/train and score/score are on work pool {config.servers.work_pool}; start workers with "
          f"`reviewflow worker --set servers.work_pool={config.servers.work_pool}`")
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from flows.deployments import start_worker

    start_worker(load_config(args.profile, args.overrides), args.name)
    return 0  # not reached: the process became the worker


def run_up(args: argparse.Namespace) -> int:
    from flows.stack import up

    config = load_config(args.profile, args.overrides)
    return up(config, config.servers.host, config.servers.mlflow_port, config.servers.prefect_port)


def run_train(args: argparse.Namespace) -> int:
    config = load_config(args.profile, [*args.overrides, *(["reuse=false"] if args.fresh else [])])
    from flows.training import train
    from tasks.stages.compare import CHECKS

    _expected_errors_in_one_line()
    with prefect_api():
        rows = train(config=config)
    # The behaviour and robustness columns are in MLflow and the Prefect artifact; a terminal is too narrow.
    print(format_table([{k: v for k, v in row.items() if k not in CHECKS} for row in rows]))
    return 0


def run_score(args: argparse.Namespace) -> int:
    refused = [item for item in args.overrides if not item.strip().startswith("scoring.")]
    if refused:
        raise ReviewflowError(f"--set {refused[0]!r}: score takes scoring settings only, e.g. --set scoring.drift_threshold=0.3")
    # The flags win over --set; each is checked with the others, so a bad value is one line naming it.
    settings = load_config("default", args.overrides).scoring.model_dump(exclude_unset=True)
    flags = {"output_dir": args.output, "architectures": args.models, "alias": args.alias, "chunk_size": args.chunk_size,
             "shadow_alias": args.shadow, "dask_address": args.dask}
    settings.update({key: value for key, value in flags.items() if value is not None})
    try:
        scoring = ScoringConfig.model_validate(settings)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        for key, flag in (("architectures", "--models"), ("shadow_alias", "--shadow"), ("chunk_size", "--chunk-size"), ("alias", "--alias"),
                          ("dask_address", "--dask")):
            message = message.replace(f"for {key}", f"for {flag}")
        raise ReviewflowError(message) from None
    from flows.scoring import score

    _expected_errors_in_one_line()
    with prefect_api():
        rows = score(scoring=scoring, paths=args.paths)
    if rows:
        print(format_table(rows))
    quarantined = [r for r in rows if r["status"] == "quarantined"]
    for row in quarantined:
        print(f"reviewflow: quarantined {row['file']}: {row['reason']}", file=sys.stderr)
    return 1 if quarantined else 0


def _listed(value: str | None, option: str, what: str) -> list[str] | None:
    """`a,b` as names; None when the option is not given; one line when it is given but names nothing."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ReviewflowError(f"{option} names no {what}")
    return names


def run_bench(args: argparse.Namespace) -> int:
    if args.profile:
        from tasks.bench.profile import flow_profile, profile_markdown

        with prefect_api():
            print(profile_markdown(flow_profile(args.profile)))
        return 0
    from tasks.bench.run import bench, table

    if args.table:
        print(table(args.table, args.write, args.section))
        return 0
    only = _listed(args.only, "--only", "benchmark")
    models = _listed(args.models, "--models", "model")
    if args.threads is not None and args.threads < 1:
        raise ReviewflowError(f"--threads must be at least 1, not {args.threads}")
    _expected_errors_in_one_line()
    try:
        bench(args.quick, only, args.json, args.write, threads=args.threads, section=args.section, models=models)
    except (ReviewflowError, KeyboardInterrupt):
        raise
    except Exception:
        logging.getLogger("reviewflow").exception("the bench failed")  # a bug: its traceback belongs in the log
        raise
    return 0


def run_report(args: argparse.Namespace) -> int:
    from tasks.report import report

    print(report(args.run_id, args.ablation, args.write, args.json))
    return 0


def run_models(args: argparse.Namespace) -> int:
    from tasks.registry.catalog import model_rows
    from tasks.tracking import connect

    rows = model_rows(connect(tracking_settings(TrackingConfig())))
    print(format_table(rows) if rows else "no registered versions yet: `reviewflow train` registers them")
    return 0


def run_promote(args: argparse.Namespace) -> int:
    from tasks.registry.catalog import promote
    from tasks.tracking import connect

    print(promote(connect(tracking_settings(TrackingConfig())), args.model, args.version, args.reason))
    return 0


class _OneLineForExpectedErrors(logging.Formatter):
    """Formats as `inner` does, but without the traceback of a ReviewflowError (bad input, unreachable server)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and isinstance(record.exc_info[1], ReviewflowError)):
            return self.inner.format(record)
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return self.inner.format(record)
        finally:
            record.exc_info, record.exc_text = saved


def _expected_errors_in_one_line() -> None:
    """Prefect's terminal log tells an expected failure in one line; its API log (the UI) keeps the traceback."""
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    for handler in {h for logger in loggers for h in logger.handlers if isinstance(h, PrefectConsoleHandler)}:
        if not isinstance(handler.formatter, _OneLineForExpectedErrors):
            handler.setFormatter(_OneLineForExpectedErrors(handler.formatter or logging.Formatter()))


def format_table(rows: list[dict]) -> str:
    """A plain-text table with a header and right-aligned numbers."""
    headers = list(rows[0]) if rows else []
    cells = [[_cell(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    # Right-aligned when every value is a number (a blank, None, does not count).
    numeric = [all(isinstance(row[h], (int, float)) or row[h] is None for row in rows) for h in headers]
    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.4f}" if isinstance(value, float) and value < 1 else str(value)


if __name__ == "__main__":
    sys.exit(main())
