"""The send ledger: a key is sent at most once; only a send Tencent refused may be tried again."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from bot import sends
from bot.errors import BusyError, TransportError
from bot.models import OutboundSend, SendStatus
from config.database import engine_for, session_scope


def _row(key: str) -> OutboundSend:
    with session_scope() as s:
        return s.scalar(select(OutboundSend).where(OutboundSend.key == key))


def test_a_key_is_claimed_once_and_again_only_after_tencent_refused_it(settings):
    # given a first claim that is not finished yet (the call under way)
    with session_scope() as s:
        assert sends.claim(session=s, key="k", cause="inbox:1") is not None
    # then nobody else may claim it
    with session_scope() as s:
        assert sends.claim(session=s, key="k", cause="inbox:1") is None
    # when Tencent answered with an error (nothing went out), then one more claim may try again
    sends.finish(key="k", status=SendStatus.failed, error="busy")
    with session_scope() as s:
        assert sends.claim(session=s, key="k", cause="inbox:1").status == SendStatus.sending.value
    # and once sent, never again
    sends.finish(key="k", status=SendStatus.sent)
    with session_scope() as s:
        assert sends.claim(session=s, key="k", cause="inbox:1") is None
    assert (_row("k").status, _row("k").cause) == ("sent", "inbox:1")


@pytest.mark.parametrize(("raised", "outcome", "status"), [
    (None, "sent", "sent"),
    (TransportError(None, "ReadTimeout", "message/send"), "unknown", "unknown"),
])
def test_send_once_records_the_outcome_and_never_repeats_a_send_that_may_be_out(settings, raised, outcome, status):
    calls = []

    def send():
        calls.append(1)
        if raised:
            raise raised

    # when a send is made twice under one key
    assert sends.send_once(key="k", cause="campaign:7", send=send) == outcome
    assert sends.send_once(key="k", cause="campaign:7", send=send) == "already sent"
    # then the call was made once, and the row says how it ended
    assert len(calls) == 1 and _row("k").status == status


def test_a_refused_send_raises_for_the_queue_to_retry_and_the_retry_sends(settings):
    def refused():
        raise BusyError(-1, "system busy", "message/send")

    with pytest.raises(BusyError):
        sends.send_once(key="k", cause=None, send=refused)
    assert (_row("k").status, _row("k").error) == ("failed", "message/send: errcode -1: system busy")
    assert sends.send_once(key="k", cause=None, send=lambda: None) == "sent"


def test_skip_records_why_keeps_an_earlier_error_and_never_skips_what_may_be_out(settings):
    # given a key never claimed, when skipped, then it is recorded skipped with the reason, once
    assert sends.skip(key="a", reason="code expired", cause="inbox:3")
    assert (_row("a").status, _row("a").error, _row("a").cause) == ("skipped", "code expired", "inbox:3")
    assert not sends.skip(key="a", reason="again")
    # given a key whose send Tencent refused, when skipped, then the earlier error follows the reason
    with session_scope() as s:
        sends.claim(session=s, key="b", cause=None)
    sends.finish(key="b", status=SendStatus.failed, error="busy")
    assert sends.skip(key="b", reason="code expired")
    assert _row("b").error == "code expired; earlier: busy"
    # given a key whose outcome is unknown, when skipped, then nothing changes: it may be out
    with session_scope() as s:
        sends.claim(session=s, key="c", cause=None)
    sends.finish(key="c", status=SendStatus.unknown, error="timeout")
    assert not sends.skip(key="c", reason="code expired")
    assert (_row("c").status, _row("c").error) == ("unknown", "timeout")


def test_two_concurrent_claims_of_one_key_let_exactly_one_send(pg_url):
    # given two workers that claim the same key at the same moment, on PostgreSQL
    engine = engine_for(pg_url)
    barrier, won = threading.Barrier(2), []

    def worker():
        with session_scope(engine) as s:
            barrier.wait()
            won.append(sends.claim(session=s, key="welcome:SAME", cause=None) is not None)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # then exactly one of them may send
    assert sorted(won) == [False, True]
