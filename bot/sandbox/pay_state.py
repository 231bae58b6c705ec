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


def _rfc3339(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds")
