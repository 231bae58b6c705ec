"""The group-buy sweep: what delayed jobs should have done and did not (a restart forgot them, Redis was flushed)."""
from __future__ import annotations

from config.database import read_scope
from config.queue import enqueue
from campaigns.groupbuy import groups, refunds, seats


def sweep() -> dict[str, int]:
    """Release holds past their time, fail groups past their deadline, and retry refunds still open; safe to repeat."""
    with read_scope() as session:
        holds, deadlines, open_refunds = seats.due(session), groups.due(session), refunds.due(session)
    for order_id in holds:
        seats.release_job(order_id)
    for group_id in deadlines:
        groups.deadline_job(group_id)
    for refund_id in open_refunds:
        enqueue(refunds.refund_job, refund_id, job_id=f"groupbuy-refund-{refund_id}")
    return {"holds": len(holds), "deadlines": len(deadlines), "refunds": len(open_refunds)}
