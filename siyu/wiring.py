"""Cross-floor listeners: higher floors subscribe to the profile store's hooks here, at start-up."""
import segments.listeners  # noqa: F401
