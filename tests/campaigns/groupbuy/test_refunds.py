"""The refund ledger against a WeChat Pay that answers PROCESSING: settled once by the refund query or by the refund
notification, whichever comes first, and a call whose answer is lost is retried under the same out_refund_no."""
from __future__ import annotations

from sqlalchemy import func, select

from bot.sandbox.callbacks import notify_refunded
from bot.sandbox.pay_state import REFUND_SETTLES_AFTER
from bot.sandbox.state import get_state
from campaigns.groupbuy.models import Refund
from campaigns.groupbuy.refunds import refund_job
from config.database import session_scope
from membership.models import TimelineEvent
from membership.traits import get_traits
from tests.campaigns.groupbuy.conftest import consumer, drain, make_offer, order_row, pay, time_passes


def _failed_paid_seat(http, clock) -> tuple[int, str]:
    """A paid seat of a group that failed at its deadline: (member id, out_trade_no); its refund is asked for."""
    offer = make_offer(http)
    member_id, headers = consumer(1)
    order = http.post(f"/mp/v1/groupbuy/offers/{offer['id']}/groups", headers=headers).json()["order"]
    assert pay(order["out_trade_no"]).status_code == 200
    drain()
    time_passes(deadlines=True)
    assert clock.run_delayed("deadline_job") == 1
    drain()
    return member_id, order["out_trade_no"]


def _refund() -> Refund:
    with session_scope() as s:
        return s.scalar(select(Refund))


def _refunded_events(member_id: int) -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(TimelineEvent).where(
            TimelineEvent.member_id == member_id, TimelineEvent.type == "groupbuy.refunded"))


def _spent(member_id: int) -> int:
    with session_scope() as s:
        return int(get_traits(s, member_id).get("total_spent_fen", 0))


def _processing(member_id: int, no: str) -> None:
    """WeChat Pay took the refund and is processing it: nothing is refunded yet on Siyu's side."""
    assert get_state().pay_refunds[f"R{no}"]["status"] == "PROCESSING"
    assert _refund().status == "processing" and _refund().attempts == 1
    assert order_row(no).status == "refunding"
    assert _refunded_events(member_id) == 0 and _spent(member_id) == 9900


def test_a_processing_refund_is_settled_by_the_refund_query_once(http, clock):
    # given a failed group's paid seat whose refund WeChat Pay answered PROCESSING
    member_id, no = _failed_paid_seat(http, clock)
    _processing(member_id, no)
    # when Siyu's delayed check queries it before WeChat Pay is done, then it stays processing and checks again
    assert clock.run_delayed("refund_job") == 1
    drain()
    _processing(member_id, no)
    assert [j.func.__name__ for j in clock.delayed].count("refund_job") == 1
    # when WeChat Pay has settled it (no notification reaches Siyu) and the next check queries it
    get_state().advance(REFUND_SETTLES_AFTER + 1)
    assert clock.run_delayed("refund_job") == 1
    drain()
    # then the ledger, the order, the timeline and the spend show the refund, once
    refund = _refund()
    assert refund.status == "succeeded" and refund.refund_id == get_state().pay_refunds[f"R{no}"]["refund_id"]
    assert order_row(no).status == "refunded"
    assert _refunded_events(member_id) == 1 and _spent(member_id) == 0
    # and the notification WeChat Pay sends afterwards, twice, and another check change nothing
    for _ in range(2):
        assert notify_refunded(f"R{no}").status_code == 200
    drain()
    assert refund_job(refund.id) == "succeeded"
    assert _refunded_events(member_id) == 1 and _spent(member_id) == 0
    # and WeChat Pay was asked to refund once, under the order's own out_refund_no
    assert get_state().pay_refund_calls == [f"R{no}"]


def test_a_processing_refund_is_settled_by_the_refund_notification_once(http, clock):
    # given a failed group's paid seat whose refund WeChat Pay answered PROCESSING
    member_id, no = _failed_paid_seat(http, clock)
    _processing(member_id, no)
    # when WeChat Pay settles it in its own time and sends the REFUND.SUCCESS notification (then twice more)
    get_state().advance(REFUND_SETTLES_AFTER + 1)
    settled = http.post("/sandbox/pay/sandbox/refunds/settle")
    assert settled.json() == {"settled": 1, "notified_status": [200]}
    for _ in range(2):
        assert notify_refunded(f"R{no}").status_code == 200
    drain()
    # then the refund is settled once
    assert _refund().status == "succeeded" and order_row(no).status == "refunded"
    assert _refunded_events(member_id) == 1 and _spent(member_id) == 0
    # and the delayed check that follows finds it settled: it asks nothing and changes nothing
    assert clock.run_delayed("refund_job") == 1
    drain()
    assert _refund().status == "succeeded" and _refunded_events(member_id) == 1
    assert get_state().pay_refund_calls == [f"R{no}"]


def test_a_refund_call_whose_answer_is_lost_is_retried_under_the_same_out_refund_no_and_refunds_once(http, clock):
    from bot.transport import RetryPolicy

    # given WeChat Pay that carries out the next refund calls but loses every answer of the first attempt
    # (the client's own retries included: 1 + busy_retries calls)
    calls = 1 + RetryPolicy().busy_retries
    get_state().lose_answer("pay/refund", times=calls)
    # when a failed group's paid seat is refunded (the job fails; the queue retries it)
    member_id, no = _failed_paid_seat(http, clock)
    # then every call WeChat Pay received named the same out_refund_no, and it holds one refund
    assert get_state().pay_refund_calls == [f"R{no}"] * calls
    assert list(get_state().pay_refunds) == [f"R{no}"]
    # and the retry asked the refund query first: it found the refund processing and made no further call
    _processing(member_id, no)
    # when WeChat Pay settles it, then it is refunded once
    get_state().advance(REFUND_SETTLES_AFTER + 1)
    assert clock.run_delayed("refund_job") == 1
    drain()
    assert _refund().status == "succeeded" and order_row(no).status == "refunded"
    assert _refunded_events(member_id) == 1 and _spent(member_id) == 0
    assert len(get_state().pay_refund_calls) == calls
