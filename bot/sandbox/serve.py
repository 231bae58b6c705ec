"""Serving the sandbox: alone (`siyu sandbox --port`) or, for tests, benches and the demo, in a background thread."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from bot.sandbox.app import create_sandbox_app
from config.logging import install_log_redaction, uvicorn_log_config


def standalone_app() -> FastAPI:
    """An app serving only the sandbox under /sandbox (so SIYU_PUBLIC_URL can point at it)."""
    app = FastAPI(title="Siyu sandbox", docs_url=None, redoc_url=None)
    app.mount("/sandbox", create_sandbox_app())
    return app


def serve(host: str = "127.0.0.1", port: int = 8001) -> None:
    """Serve the sandbox until interrupted."""
    from bot.sandbox import store
    from config.settings import get_settings

    install_log_redaction()  # its access log would print every gettoken's corpsecret and secret
    store.share(get_settings())  # the state `siyu sandbox seed|send` change
    uvicorn.run(standalone_app(), host=host, port=port, log_level="info", log_config=uvicorn_log_config())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


@dataclass
class BackgroundServer:
    """An app served by uvicorn in a daemon thread."""

    url: str
    server: _ThreadServer
    thread: threading.Thread

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(5)


def serve_in_background(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> BackgroundServer:
    """Serve `app` over real HTTP (wechatpy speaks `requests`, not ASGI); returns once it accepts connections."""
    port = port or free_port(host)
    server = _ThreadServer(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False))
    install_log_redaction()  # after uvicorn's logging config: its records bypass the root handler
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    return BackgroundServer(f"http://{host}:{port}/", server, thread)
