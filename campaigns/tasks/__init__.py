"""Staff tasks: the `wecom_staff_task` action (a WeCom task card per staff member and run), its clicks, reminders."""
