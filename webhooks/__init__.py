"""Callback intake, one folder per source: verify → persist → enqueue → 200."""
