"""`siyu sandbox`: serve the sandbox alone, seed it, and send the callbacks Tencent would send to a running Siyu.

The state these commands change is the one `siyu serve` serves (bot/sandbox/store.py: Redis or var/sandbox.db);
callbacks go to SIYU_PUBLIC_URL. Results go to stdout (one JSON object for each `send`), reasons to stderr.
"""
from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

sandbox_app = typer.Typer(help="The Tencent sandbox: serve it alone, seed it, send its callbacks to Siyu.",
                          invoke_without_command=True)
send_app = typer.Typer(help="Deliver one callback, encrypted and signed as Tencent does, to Siyu at SIYU_PUBLIC_URL.",
                       no_args_is_help=True)
sandbox_app.add_typer(send_app, name="send")
console = Console(stderr=True, soft_wrap=True)


@sandbox_app.callback()
def sandbox(ctx: typer.Context, host: str = "127.0.0.1", port: int = 8001) -> None:
    """Without a command: serve the Tencent sandbox alone (at /sandbox; point SIYU_PUBLIC_URL at it)."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.sandbox.serve import serve

    _settings()
    serve(host, port)


def _settings():
    from siyu.cli_settings import load_settings as load

    return load()


def _shared():
    """Settings, with this process's sandbox state the shared one."""
    from bot.sandbox import store

    settings = _settings()
    if not settings.uses_sandbox("wecom") and not settings.uses_sandbox("official_account"):
        console.print("[red]sandbox: every channel is configured (SIYU_SANDBOX or credentials); "
                      "the sandbox stands in for none[/red]")
        raise typer.Exit(2)
    store.share(settings)
    return settings


@sandbox_app.command("seed")
def seed(
    stores: int = typer.Option(2, min=1, max=50, help="Departments under the root (stores wecom-100, wecom-101…)."),
    staff: int = typer.Option(4, min=1, max=500, help="Staff, spread over the stores (staff000, staff001…)."),
    customers: int = typer.Option(10, min=0, max=100000, help="External contacts, spread over the staff."),
    followers: int = typer.Option(3, min=0, max=10000, help="Official-account followers."),
    mp_users: int = typer.Option(3, "--mp-users", min=0, max=10000, help="Mini-program users."),
    sync: bool = typer.Option(True, help="Then reconcile Siyu with it (`siyu sync wecom` through the server)."),
) -> None:
    """Seed the sandbox corp with stores, staff, customers, OA followers and MP users; seeding twice adds nothing."""
    from bot.sandbox import store
    from bot.sandbox.seed import seed_small

    _shared()
    with store.shared() as state:
        done = seed_small(state, stores=stores, staff=staff, customers=customers, followers=followers,
                          mp_users=mp_users)
    print(f"sandbox: stores={','.join(f'wecom-{d}' for d in done.stores)} staff={','.join(done.staff)} "
          f"customers={len(done.customers)} oa_followers={len(done.oa_followers)} mp_users={len(done.mp_users)}",
          flush=True)
    if sync:
        _sync()


def _sync() -> None:
    from dataclasses import asdict

    import httpx

    from bot.errors import WeChatAPIError
    from config.settings import get_settings
    from webhooks.wecom.sync import sync_wecom

    try:
        report = sync_wecom(progress=False)
    except (WeChatAPIError, httpx.TransportError) as exc:
        console.print(f"[red]sync: {escape(str(exc))}[/red] (is `siyu serve` running at "
                      f"{get_settings().public_url}? SIYU_PUBLIC_URL; then `siyu sync wecom`)")
        raise typer.Exit(1) from None
    print("synced: " + (" ".join(f"{k}={v}" for k, v in asdict(report).items() if v) or "nothing changed"))


@sandbox_app.command("reset")
def reset() -> None:
    """Empty the sandbox (every process serving it sees the empty corp); Siyu's database is left as it is."""
    from bot.sandbox import store

    _shared()
    store.clear()
    print("sandbox: empty")


WAIT = typer.Option(True, help="Wait until Siyu has handled the callback (its inbox row is done), up to 30 s.")


def _send(fn, wait: bool, **kwargs) -> None:
    import logging

    import httpx

    settings = _shared()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request line carries the callback's signature
    try:
        sent = fn(settings, **kwargs)
        result = sent.result
        if wait and 200 <= result["status"] < 300:
            result["handled"] = _handled(sent)
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    except httpx.TransportError as exc:
        console.print(f"[red]Siyu is not reachable at {settings.public_url} ({type(exc).__name__}): is `siyu serve` "
                      "running there? (SIYU_PUBLIC_URL)[/red]")
        raise typer.Exit(1) from None
    print(json.dumps(result, ensure_ascii=False), flush=True)
    if not 200 <= result["status"] < 300:
        console.print(f"[red]Siyu answered {result['status']}[/red]")
        raise typer.Exit(1)
    if wait and result["handled"] not in ("done", "unhandled"):
        console.print(f"[red]Siyu stored the callback but it is {result['handled']} (GET /api/v1/inbox)[/red]")
        raise typer.Exit(1)


def _handled(sent, timeout: float = 30) -> str:
    """The status of the callback's inbox row once it is no longer `received` (or still `received` at the timeout)."""
    import time

    from sqlalchemy import select

    from webhooks.crypto import parse_xml
    from webhooks.inbox import content_key, inbox_scope
    from webhooks.models import InboxEvent, InboxStatus

    # The same key Siyu stored it under: this command shares Siyu's database (and its inbox).
    key = content_key(sent.source, sent.plaintext, parse_xml(sent.plaintext))
    deadline = time.monotonic() + timeout
    while True:
        with inbox_scope() as session:
            status = session.scalar(select(InboxEvent.status).where(InboxEvent.source == sent.source,
                                                                    InboxEvent.content_key == key))
        status = getattr(status, "value", status)
        if (status is not None and status != InboxStatus.received.value) or time.monotonic() > deadline:
            return status or "not stored"
        time.sleep(0.1)


@send_app.command("add-contact")
def add_contact(
    state: str | None = typer.Option(None, "--state", "--code", help="The 联系我 code's state (it names the staff)."),
    staff: str | None = typer.Option(None, help="The staff member added (default: the code's first, or staff000)."),
    customer: str | None = typer.Option(None, help="The customer's external_userid (default: a new one)."),
    name: str = typer.Option("新客户", help="The customer's WeChat name."),
    unionid: str | None = typer.Option(None, help="The customer's unionid (links them to OA and MP identities)."),
    wait: bool = WAIT,
) -> None:
    """A customer adds a staff member (scanning a 联系我 code): change_external_contact/add_external_contact."""
    from bot.sandbox import drive

    _send(drive.add_contact, wait, staff=staff, customer=customer, state=state, name=name, unionid=unionid)


@send_app.command("del-contact")
def del_contact(
    staff: str = typer.Option(..., help="The staff member."),
    customer: str = typer.Option(..., help="The customer's external_userid."),
    by: str = typer.Option("staff", help="Who deleted whom: staff (del_external_contact), customer (del_follow_user)."),
    wait: bool = WAIT,
) -> None:
    """The relation ends: del_external_contact, or del_follow_user with --by customer."""
    from bot.sandbox import drive

    _send(drive.del_contact, wait, staff=staff, customer=customer, by=by)


@send_app.command("card-click")
def card_click(
    staff: str = typer.Option(..., help="The staff member who taps (the card must have reached them)."),
    task_id: str = typer.Option(..., "--task-id", help="The card's task_id (staff_tasks.task_id)."),
    key: str = typer.Option("task_done", help="The button's key: task_done (完成) or task_later (稍后)."),
    wait: bool = WAIT,
) -> None:
    """A staff member taps a button on a task card: template_card_event."""
    from bot.sandbox import drive

    _send(drive.card_click, wait, staff=staff, task_id=task_id, key=key)


@send_app.command("oa-subscribe")
def oa_subscribe(
    openid: str | None = typer.Option(None, help="The follower's openid (default: a new one)."),
    state: str | None = typer.Option(None, "--state", "--code", help="The OA QR code's scene (qrscene_…)."),
    unionid: str | None = typer.Option(None, help="The follower's unionid."),
    nickname: str = typer.Option("粉丝", help="The follower's nickname."),
    wait: bool = WAIT,
) -> None:
    """Someone follows the official account: the subscribe event (with the QR code's scene, when given)."""
    from bot.sandbox import drive

    _send(drive.oa_subscribe, wait, openid=openid, scene=state, unionid=unionid, nickname=nickname)


@send_app.command("template-finish")
def template_finish(wait: bool = WAIT) -> None:
    """Tencent reports the oldest unreported template message's fate (TEMPLATESENDJOBFINISH)."""
    from bot.sandbox import drive

    _send(drive.oa_template_finish, wait)


@send_app.command("text")
def text(
    openid: str = typer.Option(..., help="A follower's openid."),
    text: str = typer.Option(..., "--text", help="What they write."),
    wait: bool = WAIT,
) -> None:
    """A follower writes to the official account; prints the passive reply as they would read it."""
    from bot.sandbox import drive

    _send(drive.oa_text, wait, openid=openid, text=text)


@send_app.command("mp-text")
def mp_text(
    openid: str | None = typer.Option(None, help="A mini-program user's openid (default: a new one)."),
    text: str = typer.Option(..., "--text", help="What they write to customer service."),
    unionid: str | None = typer.Option(None, help="The user's unionid (for a new user)."),
    wait: bool = WAIT,
) -> None:
    """A mini-program user writes to customer service (message push)."""
    from bot.sandbox import drive

    _send(drive.mp_text, wait, openid=openid, text=text, unionid=unionid)
