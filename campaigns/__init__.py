"""Campaign engine, staff tasks, group-buy and bookings."""
