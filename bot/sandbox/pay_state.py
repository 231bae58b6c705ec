"""The sandbox merchant: JSAPI orders and refunds.

A refund is answered `PROCESSING`, as WeChat Pay answers almost every one: it settles (`SUCCESS`) once
REFUND_SETTLES_AFTER seconds of the sandbox clock have passed — seen by the refund query from then on, and sent
as the REFUND.SUCCESS notification by `callbacks.settle_refunds()` (what WeChat Pay's notifier does) — or at once
when a test settles it with `settle_refund` / `callbacks.notify_refunded`.
"""
from __future__ import annotations

REFUND_SETTLES_AFTER = 60.0  # seconds of the sandbox clock from the refund call to the money being back
REFUND_ENDS = ("SUCCESS", "ABNORMAL", "CLOSED")


class PayState:
    """Mixed into SandboxState."""

    def _init_pay(self) -> None:
        self.pay_orders: dict[str, dict] = {}  # out_trade_no -> order
        self.pay_refunds: dict[str, dict] = {}  # out_refund_no -> refund (keys starting with _ are the sandbox's)
        self.pay_refund_calls: list[str] = []  # the out_refund_no of every refund call received, in order

    def settle_refund(self, out_refund_no: str, refund_status: str = "SUCCESS") -> dict:
        """A PROCESSING refund ends now with `refund_status` (SUCCESS, ABNORMAL, CLOSED); an ended one stays."""
        with self.lock:
            rec = self.pay_refunds[out_refund_no]
            if rec["status"] == "PROCESSING":
                rec["status"] = refund_status
                if refund_status == "SUCCESS":
                    rec["success_time"] = _rfc3339(self.now())
            return rec

    def due_refunds(self) -> list[str]:
        """The PROCESSING refunds whose time to settle has come, settled now (SUCCESS): their out_refund_no."""
        with self.lock:
            due = [no for no, rec in self.pay_refunds.items()
                   if rec["status"] == "PROCESSING" and rec["_settle_at"] <= self.now()]
            for no in due:
                self.settle_refund(no)
            return due

    def refund_view(self, out_refund_no: str) -> dict | None:
        """The refund as the refund query answers it (settled first if its time has come)."""
        with self.lock:
            rec = self.pay_refunds.get(out_refund_no)
            if rec is None:
                return None
            if rec["status"] == "PROCESSING" and rec["_settle_at"] <= self.now():
                self.settle_refund(out_refund_no)
            return {k: v for k, v in rec.items() if not k.startswith("_")}

    def pay_order(self, out_trade_no: str) -> dict:
        """The consumer pays a prepaid order (what WeChat does when they confirm in the cashier)."""
        with self.lock:
            order = self.pay_orders[out_trade_no]
            if order["trade_state"] == "NOTPAY":
                order["trade_state"] = "SUCCESS"
                order["trade_state_desc"] = "支付成功"
                order["transaction_id"] = "42000" + self.new_id("", 23).upper()
                order["success_time"] = _rfc3339(self.now())
            return order

    def refund_resource(self, out_refund_no: str) -> dict:
        """The decrypted `resource` of the REFUND.* notification WeChat Pay sends once a refund has ended."""
        with self.lock:
            rec = self.pay_refunds[out_refund_no]
            if rec["status"] not in REFUND_ENDS:
                raise ValueError(f"refund {out_refund_no} is {rec['status']}: WeChat Pay notifies ended refunds only")
            order = self.pay_orders[rec["out_trade_no"]]
            return {"mchid": order.get("mchid"), "out_trade_no": rec["out_trade_no"],
                    "transaction_id": rec["transaction_id"], "out_refund_no": out_refund_no,
                    "refund_id": rec["refund_id"], "refund_status": rec["status"],
                    "success_time": rec.get("success_time"), "user_received_account": rec["user_received_account"],
                    "amount": {k: rec["amount"][k] for k in ("total", "refund", "payer_total", "payer_refund")}}


def _rfc3339(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")
