"""The top floor: the app factory, the `siyu` CLI and the scheduler registry."""
