"""Service bookings: services, store hours and capacity, slots, bookings and their progress, reminders."""
