"""Ground floor: settings, database, Redis and queue wiring, logging. Imports nothing of Siyu's."""
