"""Group-buy (拼团): offers, groups, one order per seat paid through WeChat Pay, and the refund ledger."""
