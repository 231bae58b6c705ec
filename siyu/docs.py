"""The API documentation (/docs, /redoc) with every asset served by Siyu itself: it works offline.

FastAPI's defaults load Swagger UI and ReDoc from a CDN (and fonts from Google): blank pages without
internet access and slow ones in mainland China. The vendored files and their versions and licenses are in
siyu/static/docs/README.md.
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(__file__).parent / "static" / "docs"
ASSETS_URL = "/docs/assets"


def install(app: FastAPI) -> None:
    """Serve /docs (Swagger UI), /redoc and their assets at /docs/assets on `app` (built with docs_url=None)."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        """Swagger UI, from Siyu's own assets."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/swagger-ui/favicon-32x32.png",
            # No online validator badge (it is an image from validator.swagger.io); keep the token across reloads.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        """ReDoc, from Siyu's own assets."""
        return get_redoc_html(openapi_url=app.openapi_url, title=title,
                              redoc_js_url=f"{ASSETS_URL}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)
