"""The `siyu` command (CONTRACT §1)."""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape

from config import metrics as config_metrics
from config.inputs import MAX_DB_ID
from config.settings import SettingsError
from siyu.cli_settings import load_settings as _settings
from siyu.sandbox_cli import sandbox_app

app = typer.Typer(help="Siyu (私域): WeChat/WeCom SCRM for store chains.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sync_app = typer.Typer(help="Reconcile Siyu with Tencent.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens of the admin API.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sync_app, name="sync")
app.add_typer(token_app, name="token")
app.add_typer(sandbox_app, name="sandbox")
console = Console(stderr=True, soft_wrap=True)  # logs and reasons, one line each; results go to stdout
out = Console(soft_wrap=True)  # results: one line each, however wide the terminal


METRIC_COMMANDS = {"serve", "worker", "scheduler", "sync"}  # processes whose counters /metrics adds up


@app.callback()
def _every_command(ctx: typer.Context) -> None:
    # Before every command: the same listeners and handlers as the server (a sync's merges and group events
    # reach the counters and the segments); after it, jobs it queued in-process (embedded mode) finish.
    # Multiprocess metrics are chosen when the first metric is made, so they are enabled before the wiring
    # imports the modules that define metrics.
    from config.queue import in_process_runner
    from siyu import wiring

    if ctx.invoked_subcommand in METRIC_COMMANDS:
        _settings(metrics=True)
    wiring.install()
    ctx.call_on_close(lambda: in_process_runner().drain(timeout=600))


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API, webhooks and (embedded mode) jobs and schedules."""
    import uvicorn

    from config.logging import uvicorn_log_config
    from membership.access import bootstrap_token
    from siyu import db

    settings = _public_url_follows(_settings(metrics=True), host, port)
    config_metrics.clean_dead()  # the files of this host's processes that are gone (an earlier run's workers)
    if settings.embedded:
        db.upgrade()
        if workers != 1:
            console.print("[yellow]embedded mode runs jobs in-process: serving with one worker[/yellow]")
            workers = 1
    token = bootstrap_token()
    if token and not settings.admin_token:
        print(f"admin token: {token}", flush=True)  # plain, unwrapped: people copy it
    console.print(f"Siyu on http://{host}:{port}  docs: http://{host}:{port}/docs  "
                  f"mode: {'embedded' if settings.embedded else 'redis'}")
    uvicorn.run("siyu.server:create_server", factory=True, host=host, port=port, workers=workers,
                log_level=settings.log_level.lower(), log_config=uvicorn_log_config())


def _public_url_follows(settings, host: str, port: int):
    """Unless SIYU_PUBLIC_URL is set, Siyu (and its sandbox's API base) is reachable where it is served."""
    import os

    from config.settings import get_settings

    if "public_url" in settings.model_fields_set:
        return settings
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    os.environ["SIYU_PUBLIC_URL"] = f"http://{reachable}:{port}/"  # the workers uvicorn starts inherit it
    get_settings.cache_clear()
    return get_settings()


@app.command()
def worker(
    burst: bool = typer.Option(False, help="Exit when the queues are empty."),
    fork: bool = typer.Option(False, help="Run each job in a forked work-horse (isolation, ~0.4 s per job)."),
) -> None:
    """Run an RQ worker on the fast, default and low queues (needs SIYU_REDIS_URL)."""
    from siyu import worker as rq_worker

    settings = _settings(metrics=True)
    if settings.embedded:
        console.print("SIYU_REDIS_URL: not set; embedded mode runs jobs inside `siyu serve`")
        raise typer.Exit(2)
    rq_worker.run(burst=burst, fork=fork)


@app.command()
def scheduler() -> None:
    """Run the schedules: one process is active per deployment, others stand by (needs SIYU_REDIS_URL)."""
    from siyu.leader import RedisLease
    from siyu.schedules import check_overrides, elected_scheduler

    settings = _settings(metrics=True)
    if settings.embedded:
        console.print("SIYU_REDIS_URL: not set; embedded mode runs schedules inside `siyu serve`")
        raise typer.Exit(2)
    try:
        check_overrides()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    elector = elected_scheduler(RedisLease.from_url(settings.redis_url, settings.scheduler_lease_seconds))
    elector.run(done)  # returns once a signal arrived, the lease released


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply schema migrations."""
    from siyu import db

    settings = _settings()
    db.upgrade(revision=revision)
    out.print(f"database at {revision}: {settings.database_url.split('@')[-1]}", markup=False)


@sync_app.command("wecom")
def sync_wecom(
    allow_shrink: bool = typer.Option(
        False, "--allow-shrink", help="Apply removals even when WeCom's answer shrank by more than "
                                      "SIYU_SYNC_MAX_SHRINK."),
) -> None:
    """Full reconcile of staff, tags, contacts and group chats from WeCom."""
    from dataclasses import asdict

    from bot.errors import WeChatAPIError
    from webhooks.wecom.sync import sync_wecom as run
    from webhooks.wecom.sync_guard import ShrinkRefused

    _settings(metrics=True)
    try:
        report = run(progress=True, allow_shrink=allow_shrink)
    except WeChatAPIError as exc:
        console.print(f"[red]sync wecom: {exc}[/red] (run again: it resumes where it stopped)")
        raise typer.Exit(1) from None
    except ShrinkRefused as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)  # one line, however wide
        raise typer.Exit(1) from None
    out.print(" ".join(f"{k}={v}" for k, v in asdict(report).items() if v), markup=False)


@contextlib.contextmanager
def _token_session():
    """A committed session for a token command; a refused or unreachable database ends it in one line."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from config.database import session_scope
    from membership.exceptions import InvalidInput, NotFound

    _settings()
    try:
        with session_scope() as session:
            yield session
    except (NotFound, InvalidInput) as exc:
        console.print(f"[red]token: {exc}[/red]")
        raise typer.Exit(1) from None
    except (OperationalError, ProgrammingError) as exc:
        console.print(f"[red]database: {type(exc.orig).__name__}[/red] "
                      "(is it reachable, and at head? `siyu db upgrade`)")
        raise typer.Exit(1) from None


@token_app.command("create")
def token_create(
    role: str = typer.Option(..., help="admin, marketer, store_manager or staff."),
    store: str | None = typer.Option(None, help="Store code (store managers)."),
    staff: str | None = typer.Option(None, help="Staff userid (staff)."),
    name: str | None = typer.Option(None, help="Who or what the token is for (default: the role)."),
    expires_at: str | None = typer.Option(None, "--expires-at", help="ISO 8601 with an offset; default: never."),
) -> None:
    """Issue a token: the token alone on stdout (TOKEN=$(siyu token create --role admin)), its id on stderr."""
    from pydantic import ValidationError

    from membership.schemas import TokenIn
    from membership.tokens import create_token

    try:
        body = TokenIn.model_validate(
            {"name": name or role, "role": role, "store": store, "staff": staff, "expires_at": expires_at})
    except ValidationError as exc:
        err = exc.errors()[0]
        console.print(f"[red]token: {'.'.join(map(str, err['loc']))}: {err['msg']}[/red]")
        raise typer.Exit(2) from None
    with _token_session() as session:
        row, secret = create_token(session, **body.model_dump())
    console.print(f"token {row.id} ({row.role}) created")
    print(secret, flush=True)


@token_app.command("list")
def token_list(as_json: bool = typer.Option(False, "--json", help="One JSON array instead of a table.")) -> None:
    """Every token: id, name, role, store, staff, created, expires, revoked (never a secret)."""
    from membership.tokens import list_tokens, token_info

    with _token_session() as session:
        rows = [token_info(t).model_dump(mode="json") for t in list_tokens(session)]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False))
        return
    columns = ["id", "name", "role", "store", "staff", "created_at", "expires_at", "revoked_at"]
    print("\t".join(columns))
    for row in rows:
        print("\t".join("-" if row[c] is None else str(row[c]) for c in columns))


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., min=1, max=MAX_DB_ID, help="The id `siyu token list` shows."),
) -> None:
    """Revoke a token: its next request is refused."""
    from membership.tokens import revoke_token

    with _token_session() as session:
        revoke_token(session, token_id=token_id)
    print(f"revoked {token_id}")


@app.command()
def demo() -> None:
    """A scripted end-to-end story against the sandbox (in a temporary directory)."""
    from siyu.demo import run

    run()


@app.command()
def doctor() -> None:
    """Check the configuration and every external connection, one line each."""
    from siyu.doctor import run_checks

    try:
        from config.settings import get_settings

        get_settings()
    except SettingsError as exc:  # the doctor's findings are its result: stdout, like the checks below
        out.print(f"[red]✗ configuration:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    failed = 0
    for ok, line in run_checks():
        failed += not ok
        out.print(("[green]✓[/green] " if ok else "[red]✗[/red] ") + escape(line))
    raise typer.Exit(1 if failed else 0)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
