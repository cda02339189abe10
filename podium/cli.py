"""The ``podium`` command line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from podium.extras import TOOLS, code_present, install_hint, missing_distributions
from podium.settings import HTTP_SERVICES, PlatformSettings, SettingsT, load_settings_or_exit
from services.ingest.settings import IngestSettings
from services.notifier.settings import NotifierSettings
from services.query.settings import QuerySettings
from services.ranker.settings import RankerSettings
from shared.logging import configure_logging
from shared.settings import CommonSettings


def _settings_with_logging(settings_class: type[SettingsT], service: str) -> SettingsT:
    """``settings_class`` loaded (or exit 2) with logging configured: a command validates
    only the settings it reads, and every command refuses unknown ``PODIUM_*`` names."""
    settings = load_settings_or_exit(settings_class)
    configure_logging(service, level=settings.log_level, json_lines=settings.log_json)
    return settings


@click.group()
def main() -> None:
    """Podium: a real-time leaderboard platform."""


def _tool(command: click.Command) -> click.Command:
    """Add a tool's command (dev, soak, bench) only where its code is installed; where its
    extra is not, hide it and make it fail with the install command (podium.extras)."""
    tool = next(tool for tool in TOOLS if tool.command == command.name)
    if not code_present(tool):
        return command
    missing = missing_distributions(tool.extra)
    if missing:
        hint = install_hint(tool, missing)

        def refuse(**_: object) -> None:
            raise click.ClickException(hint)

        command.hidden = True
        command.callback = refuse
    main.add_command(command)
    return command


@_tool
@click.command()
@click.option(
    "--attach-logs", is_flag=True, help="Print service logs here instead of .podium/logs."
)
def dev(attach_logs: bool) -> None:
    """Run the whole platform on this machine (embedded broker, stores when needed)."""
    from podium.dev import run_dev

    sys.exit(run_dev(attach_logs=attach_logs))


@main.command()
@click.argument("service", type=click.Choice(HTTP_SERVICES))
def serve(service: str) -> None:
    """Run one HTTP service in the foreground.

    Its settings are loaded here first (a bad value stops it before anything is imported or
    bound); uvicorn then calls the factory in ``podium.apps``, which loads them again in each
    worker process.
    """
    from shared.http.server import serve as serve_app

    if service == "ingest":
        ingest = _settings_with_logging(IngestSettings, service)
        from podium.apps import ingest_app

        serve_app(ingest_app, ingest, ingest.ingest_port)
    elif service == "query":
        query = _settings_with_logging(QuerySettings, service)
        from podium.apps import query_app

        serve_app(query_app, query, query.query_port)
    else:
        notifier = _settings_with_logging(NotifierSettings, service)
        from podium.apps import notifier_app
        from services.notifier.app import websocket_limits

        serve_app(
            notifier_app, notifier, notifier.notifier_port, websocket=websocket_limits(notifier)
        )


@main.command()
def ranker() -> None:
    """Run the ranker (the stream processor) in the foreground."""
    settings = _settings_with_logging(RankerSettings, "ranker")
    from services.ranker.main import run
    from shared.tracing import configure_tracing

    configure_tracing("ranker")  # on only when an OTEL_EXPORTER_OTLP_*ENDPOINT is set
    sys.exit(run(settings))


@main.command()
@click.option("--competition", "competition_id", default=None, help="Only this competition.")
def rebuild(competition_id: str | None) -> None:
    """Rebuild Redis leaderboards from PostgreSQL standings (all competitions by default,
    each with its team board)."""
    from services.ranker.rebuild import rebuild_leaderboards
    from shared.errors import NotFoundError

    settings = _settings_with_logging(RankerSettings, "rebuild")
    try:
        loaded = asyncio.run(rebuild_leaderboards(settings, competition_id))
    except NotFoundError as error:
        raise click.BadParameter(error.message, param_hint="--competition") from error
    for cid, count in loaded.items():
        click.echo(f"rebuilt {cid}: {count} standing(s)")
    click.echo(f"rebuilt {len(loaded)} board(s)")


@main.command()
def reconcile() -> None:
    """Compare every leaderboard in Redis with PostgreSQL once; rebuild the stale ones."""
    from services.ranker.reconcile import reconcile_command

    settings = _settings_with_logging(RankerSettings, "reconcile")
    report = asyncio.run(reconcile_command(settings))
    if report.skipped:
        click.echo("skipped: a ranker is reconciling right now")
        return
    for cid, found in report.healed.items():
        click.echo(f"rebuilt {cid}: was {found.value}")
    click.echo(
        f"checked {report.checked} competition(s) in {report.duration_s:.3f} s,"
        f" rebuilt {len(report.healed)}"
    )


@main.command()
def migrate() -> None:
    """Apply the missing database migrations (safe to run again)."""
    from shared.migrations import migrate as apply

    settings = _settings_with_logging(CommonSettings, "migrate")
    applied = asyncio.run(apply(settings))
    click.echo(f"applied {len(applied)} migration(s) to schema {settings.db_schema!r}")


@main.command()
def prune() -> None:
    """Drop event rows beyond PODIUM_DEDUP_HORIZON_DAYS, create the coming partitions (daily)."""
    from podium.ops.prune import describe
    from podium.ops.prune import prune as run_prune

    settings = _settings_with_logging(CommonSettings, "prune")
    for line in describe(asyncio.run(run_prune(settings))):
        click.echo(line)


@main.command()
@click.option("--sub", "subject", required=True, help="The token's subject (user or server id).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    help="scores:write, scores:write:any, leaderboards:read or admin; repeat or comma-separate.",
)
@click.option(
    "--ttl", "ttl_s", type=click.IntRange(min=1), default=None, help="Lifetime in seconds."
)
def token(subject: str, scopes: tuple[str, ...], ttl_s: int | None) -> None:
    """Print a JWT signed with the configured key."""
    from shared.auth import issue_token

    wanted = [part for value in scopes for part in value.replace(",", " ").split()]
    try:
        click.echo(issue_token(load_settings_or_exit(CommonSettings), subject, wanted, ttl_s=ttl_s))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scope") from error


@_tool
@click.command()
@click.option(
    "--duration",
    "duration_s",
    type=click.FloatRange(min=10),
    default=75.0,
    show_default=True,
    help="Seconds of load (faults are spread over it).",
)
@click.option(
    "--rate",
    "rate_eps",
    type=click.FloatRange(min=1),
    default=200.0,
    show_default=True,
    help="Score events offered per second.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the JSON report here.",
)
@click.option(
    "--batch-share",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Share of load ticks sent as one batch request (the rest: one request per event).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False),
    default=".podium/soak",
    show_default=True,
    help="Where the run keeps its processes' logs.",
)
@click.option(
    "--plots",
    "plots_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Draw the run's timeline (load, ingest p99, ranker lag, freshness, faults) as a PNG here.",
)
@click.option(
    "--redis-cluster",
    is_flag=True,
    help="Run on a private 3-master Redis Cluster (Debian's redis-server) and kill a master.",
)
def soak(
    duration_s: float,
    rate_eps: float,
    report_path: str | None,
    batch_share: float,
    work_dir: str,
    plots_dir: str | None,
    redis_cluster: bool,
) -> None:
    """Run the platform as separate processes under load while injecting faults; check it."""
    from pathlib import Path

    from soak.runner import run_soak

    settings = load_settings_or_exit(PlatformSettings)
    configure_logging("soak", level="WARNING", json_lines=False)
    try:
        report = asyncio.run(
            run_soak(
                settings,
                duration_s=duration_s,
                rate_eps=rate_eps,
                work_dir=Path(work_dir),
                report_path=Path(report_path) if report_path else None,
                command=" ".join(["podium", "soak", *sys.argv[2:]]),
                batch_share=batch_share,
                plots_dir=Path(plots_dir) if plots_dir else None,
                redis_cluster=redis_cluster,
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C outside the run itself
    if report.get("interrupted"):
        sys.exit(130)  # Ctrl-C: the partial report is printed and written already
    sys.exit(0 if report["passed"] else 1)


@_tool
@click.command()
@click.option("--smoke", is_flag=True, help="Tiny sizes, ~1 s per phase (checks the harness).")
@click.option("--profile", is_flag=True, help="Sample the service of each phase with py-spy.")
@click.option(
    "--output",
    "results_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("bench/results.json"),
    show_default=True,
    help="Where to write the results JSON.",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".podium/bench"),
    show_default=True,
    help="Where the run keeps logs, wrk scripts and profiles.",
)
@click.option(
    "--phases",
    default="all",
    show_default=True,
    help="Comma-separated phases to run: ingest (also measures the naive app), ranker,"
    " freshness, query, notifier; targets of the others show as not measured.",
)
@click.option(
    "--update-docs",
    is_flag=True,
    help="Paste the tables into README.md and docs/performance.md (full runs only).",
)
def bench(
    smoke: bool, profile: bool, results_path: Path, work_dir: Path, phases: str, update_docs: bool
) -> None:
    """Benchmark every service against the naive app and Redis, measured in the same run."""
    from bench.config import FULL, SMOKE
    from bench.runner import ALL_PHASES, run_bench

    chosen = ALL_PHASES if phases == "all" else frozenset(phases.split(","))
    if unknown := sorted(chosen - ALL_PHASES):
        raise click.BadParameter(
            f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(sorted(ALL_PHASES))}",
            param_hint="--phases",
        )
    if update_docs and (smoke or chosen != ALL_PHASES):
        raise click.BadParameter(
            "only a full run updates the documents", param_hint="--update-docs"
        )
    settings = load_settings_or_exit(PlatformSettings)
    configure_logging("bench", level="WARNING", json_lines=False)
    results = asyncio.run(
        run_bench(
            settings,
            SMOKE if smoke else FULL,
            work_dir=work_dir,
            results_path=results_path,
            profile=profile,
            phases=chosen,
        )
    )
    click.echo(results["table"])
    click.echo(f"wrote {results_path} ({results['total_seconds']:.0f} s)")
    if update_docs:
        from bench.docs import update_docs as paste_tables

        for path in paste_tables(results, Path.cwd()):
            click.echo(f"updated {path}")


@main.command(name="settings")
def settings_reference() -> None:
    """Print every PODIUM_* variable with its default and meaning (Markdown)."""
    from podium.ops.settings_doc import settings_table

    click.echo(settings_table())


@main.command()
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Archive file to write (pg_dump custom format).",
)
def backup(output: Path) -> None:
    """Dump the Podium schema (PostgreSQL, the system of record) to a file."""
    from podium.ops.backup import BackupError, backup_schema

    settings = _settings_with_logging(CommonSettings, "backup")
    try:
        backup_schema(settings, output)
    except BackupError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"backed up schema {settings.db_schema!r} to {output}")


@main.command()
@click.option(
    "--input",
    "archive",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Archive written by `podium backup`.",
)
@click.option(
    "--clean", is_flag=True, help="Replace an existing schema's contents (default: refuse)."
)
def restore(archive: Path, clean: bool) -> None:
    """Restore the Podium schema from a backup; then run `podium rebuild` for Redis."""
    from podium.ops.backup import BackupError, restore_schema

    settings = _settings_with_logging(CommonSettings, "restore")
    try:
        asyncio.run(restore_schema(settings, archive, clean=clean))
    except BackupError as error:
        raise click.ClickException(error.message) from error
    click.echo(f"restored schema {settings.db_schema!r} from {archive}")


if __name__ == "__main__":
    main()
