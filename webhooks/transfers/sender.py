"""Making the claimed transfer calls: 100 customers a call, each answer recorded in its own transaction.

Called once the claims are committed (DESIGN 14). WeCom's error answers fail the rows they cover (nothing was
handed over); a call without a usable answer leaves its rows `unknown`, for transfer_result to settle.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import groupby

from sqlalchemy import select

from bot import clients
from bot.errors import TransportError, WeChatAPIError
from webhooks.transfers import service
from webhooks.transfers.service import as_int
from webhooks.transfers.models import Transfer, TransferStatus
from config.database import session_scope
from config.types import utcnow

log = logging.getLogger(__name__)

PER_CALL = 100  # external_userid per transfer_customer: "每次最多分配100个客户"


def send_claimed(transfer_ids: list[int], *, clock: Callable = utcnow) -> None:
    """Call transfer_customer (or resigned/transfer_customer) for these `requested` rows and record the answers."""
    if not transfer_ids:
        return
    with session_scope() as session:
        rows = session.execute(
            select(Transfer.id, Transfer.external_userid, Transfer.handover_userid, Transfer.takeover_userid,
                   Transfer.resigned, Transfer.message)
            .where(Transfer.id.in_(transfer_ids), Transfer.status == TransferStatus.requested.value)
            .order_by(Transfer.handover_userid, Transfer.takeover_userid, Transfer.resigned, Transfer.id)).all()
    for (handover, takeover, resigned, message), group in groupby(rows, key=lambda r: r[2:]):
        group = list(group)
        for start in range(0, len(group), PER_CALL):
            _send_chunk(handover, takeover, resigned, message, group[start:start + PER_CALL], clock)


def _send_chunk(handover: str, takeover: str, resigned: bool, message: str | None, chunk: list, clock) -> None:
    ids = {ext: transfer_id for transfer_id, ext, *_ in chunk}
    try:
        client = clients.wecom_client()
        if resigned:
            answer = client.resigned_transfer_customer(handover, takeover, list(ids))
        else:
            answer = client.transfer_customer(handover, takeover, list(ids), transfer_success_msg=message)
    except TransportError as exc:
        log.warning("transfer %s → %s: outcome unknown for %d customers, not resent: %s", handover, takeover,
                    len(ids), exc)
        error = str(exc)
        _record(lambda s: service.record_unknown(s, list(ids.values()), error, now=clock()))
        return
    except WeChatAPIError as exc:
        log.warning("transfer %s → %s: refused for %d customers: %s", handover, takeover, len(ids), exc)
        errcode, error = exc.errcode, str(exc)
        _record(lambda s: service.record_call_failure(s, list(ids.values()), errcode, error, now=clock()))
        return
    except Exception as exc:  # not Tencent's answer: whether anything was handed over is unknown
        log.exception("transfer %s → %s: the call broke", handover, takeover)
        error = f"{type(exc).__name__}: {exc}"
        _record(lambda s: service.record_unknown(s, list(ids.values()), error, now=clock()))
        return
    answered = {str(c.get("external_userid")): c.get("errcode") for c in answer.get("customer") or []}
    now = clock()

    def write(session) -> None:
        for ext, transfer_id in ids.items():
            if ext in answered:
                service.record_answer(session, transfer_id, as_int(answered[ext]), now=now)
        if silent := [transfer_id for ext, transfer_id in ids.items() if ext not in answered]:
            service.record_unknown(session, silent, "WeCom's answer did not name this customer", now=now)

    _record(write)


def _record(write: Callable) -> None:
    with session_scope() as session:
        write(session)
