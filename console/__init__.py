"""The console: server-rendered pages (Jinja2, htmx, ECharts, every asset served from here) over the services."""
