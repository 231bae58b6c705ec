"""The `siyu` command (CONTRACT §1)."""
from __future__ import annotations

import signal
import sys
import threading

import typer
from rich.console import Console
from rich.markup import escape

from config.settings import SettingsError

app = typer.Typer(help="Siyu (私域): WeChat/WeCom SCRM for store chains.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
sync_app = typer.Typer(help="Reconcile Siyu with Tencent.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(sync_app, name="sync")
console = Console(stderr=True)


def _settings():
    """Load settings or stop with the one-line reason."""
    from config.logging import setup_logging
    from config.settings import get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from None
    setup_logging()
    return settings


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the HTTP API, webhooks and (embedded mode) jobs and schedules."""
    import uvicorn

    from membership.access import bootstrap_token
    from siyu import db

    settings = _settings()
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
                log_level=settings.log_level.lower())


@app.command()
def worker(
    burst: bool = typer.Option(False, help="Exit when the queues are empty."),
    fork: bool = typer.Option(False, help="Run each job in a forked work-horse (isolation, ~0.4 s per job)."),
) -> None:
    """Run an RQ worker on the fast, default and low queues (needs SIYU_REDIS_URL)."""
    from siyu import worker as rq_worker

    settings = _settings()
    if settings.embedded:
        console.print("SIYU_REDIS_URL: not set; embedded mode runs jobs inside `siyu serve`")
        raise typer.Exit(2)
    rq_worker.run(burst=burst, fork=fork)


@app.command()
def scheduler() -> None:
    """Run the schedules: one process is active per deployment, others stand by (needs SIYU_REDIS_URL)."""
    from siyu.leader import RedisLease
    from siyu.schedules import check_overrides, elected_scheduler

    settings = _settings()
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
    console.print(f"database at {revision}: {settings.database_url.split('@')[-1]}")


@sync_app.command("wecom")
def sync_wecom(
    allow_shrink: bool = typer.Option(False, "--allow-shrink",
                                      help="Apply removals even when WeCom's answer shrank by more than SIYU_SYNC_MAX_SHRINK."),
) -> None:
    """Full reconcile of staff, tags, contacts and group chats from WeCom."""
    from dataclasses import asdict

    from bot.errors import WeChatAPIError
    from bot.sync import sync_wecom as run
    from bot.sync_guard import ShrinkRefused

    _settings()
    try:
        report = run(progress=True, allow_shrink=allow_shrink)
    except WeChatAPIError as exc:
        console.print(f"[red]sync wecom: {exc}[/red] (run again: it resumes where it stopped)")
        raise typer.Exit(1) from None
    except ShrinkRefused as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)  # one line, however wide
        raise typer.Exit(1) from None
    console.print(" ".join(f"{k}={v}" for k, v in asdict(report).items() if v))


@app.command()
def sandbox(host: str = "127.0.0.1", port: int = 8001) -> None:
    """Serve the Tencent sandbox alone (at /sandbox; point SIYU_PUBLIC_URL at it)."""
    from bot.sandbox.serve import serve

    _settings()
    serve(host, port)


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
    except SettingsError as exc:
        console.print(f"[red]✗ configuration:[/red] {exc}")
        raise typer.Exit(1) from None
    failed = 0
    for ok, line in run_checks():
        failed += not ok
        console.print(("[green]✓[/green] " if ok else "[red]✗[/red] ") + escape(line), soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
