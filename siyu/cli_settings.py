"""Settings for a `siyu` command: loaded, or the command stops with the one-line reason."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from config import metrics as config_metrics
from config.files import secure_var_dir
from config.settings import SettingsError

console = Console(stderr=True, soft_wrap=True)


def load_settings(metrics: bool = False):
    """Load settings or stop with the one-line reason; with `metrics`, count into the deployment's metrics directory."""
    from config.logging import setup_logging
    from config.settings import get_settings

    try:
        settings = get_settings()
        if metrics:  # before anything that defines a metric is imported
            config_metrics.enable(settings.var_dir)
    except (SettingsError, config_metrics.MetricsDirError) as exc:
        console.print(f"[red]configuration error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    setup_logging()
    secure_var_dir(settings.var_dir)
    return settings
