"""Fixtures of the consumer API tests: the same served sandbox, app and small world as the bookings tests."""
from tests.campaigns.bookings.conftest import client, tokens

__all__ = ["client", "tokens"]  # `sandbox` is the root conftest's
