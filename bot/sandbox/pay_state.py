"""The sandbox merchant: JSAPI orders and refunds."""
from __future__ import annotations


class PayState:
    """Mixed into SandboxState."""

    def _init_pay(self) -> None:
        self.pay_orders: dict[str, dict] = {}  # out_trade_no -> order
        self.pay_refunds: dict[str, dict] = {}  # out_refund_no -> refund

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

    def refund_resource(self, out_refund_no: str, refund_status: str = "SUCCESS") -> dict:
        """The decrypted `resource` of the REFUND.* notification WeChat Pay sends when a refund settles."""
        with self.lock:
            rec = self.pay_refunds[out_refund_no]
            order = self.pay_orders[rec["out_trade_no"]]
            return {"mchid": order.get("mchid"), "out_trade_no": rec["out_trade_no"],
                    "transaction_id": rec["transaction_id"], "out_refund_no": out_refund_no,
                    "refund_id": rec["refund_id"], "refund_status": refund_status,
                    "success_time": rec.get("success_time"), "user_received_account": rec["user_received_account"],
                    "amount": {k: rec["amount"][k] for k in ("total", "refund", "payer_total", "payer_refund")}}


def _rfc3339(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")
