"""The consumer HTTP API of the mini-program."""
