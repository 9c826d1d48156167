"""A loopback static server for the TF.js page: the page, TF.js itself, and the serving folder.

    /            docker/page/ (index.html, app.js)
    /tf.min.js   node_modules/@tensorflow/tfjs/dist/tf.min.js (installed by npm; no CDN)
    /serving/    the serving root (current.json, versions, their tfjs/ folders)

The production compose file serves the same layout with nginx (docker/).
"""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pipelines.settings import REPO_ROOT

PAGE_DIR = REPO_ROOT / "docker" / "page"
TFJS_BUNDLE = REPO_ROOT / "node_modules" / "@tensorflow" / "tfjs" / "dist" / "tf.min.js"


class PageError(RuntimeError):
    """The page cannot be served; the message says what is missing."""


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, serving_root: Path, **kwargs):
        self.serving_root = serving_root
        super().__init__(*args, directory=str(PAGE_DIR), **kwargs)

    def translate_path(self, path: str) -> str:
        route = path.split("?", 1)[0].split("#", 1)[0]
        if route == "/tf.min.js":
            return str(TFJS_BUNDLE)
        if route.startswith("/serving/"):
            inner = super().translate_path("/" + route.removeprefix("/serving/"))
            return str(self.serving_root / Path(inner).relative_to(PAGE_DIR))
        return super().translate_path(path)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def start(serving_root: Path, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Starts the server in a background thread; `server.server_address` has the port."""
    if not TFJS_BUNDLE.is_file():
        raise PageError(f"{TFJS_BUNDLE} is missing; run `make install` (npm installs @tensorflow/tfjs)")
    handler = functools.partial(_Handler, serving_root=Path(serving_root).resolve())
    server = ThreadingHTTPServer((host, port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
