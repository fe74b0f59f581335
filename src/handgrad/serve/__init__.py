"""``handgrad serve``: a web page to draw a digit or type a prompt and watch every layer and
gradient of your own trained model, and the JSON API behind it.

FastAPI and uvicorn are an optional extra (``pip install "handgrad[serve]"``), imported only
when serving; :mod:`handgrad.serve.models` computes everything with NumPy alone.
"""

from __future__ import annotations

import socket
import sys

__all__ = ["serve", "create_app", "MissingServeExtra", "LOCAL_HOSTS"]

#: Hosts reachable only from this machine; any other host gets a warning.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class MissingServeExtra(ImportError):
    pass


def _require_extra():
    try:
        import fastapi  # noqa: F401
        import uvicorn
        import PIL  # noqa: F401
    except ImportError as error:
        raise MissingServeExtra(f"handgrad serve needs FastAPI, uvicorn and Pillow ({error.name} is missing): "
                                'pip install "handgrad[serve]"') from None
    return uvicorn


def create_app(model_paths, copies: int = 2, data_dir=None):
    """The FastAPI app serving ``model_paths`` (see :func:`handgrad.serve.app.create_app`)."""
    _require_extra()
    from .app import create_app as build

    return build(model_paths, copies=copies, data_dir=data_dir)


def serve(model_paths, host: str = "127.0.0.1", port: int = 8000, copies: int = 2, data_dir=None) -> None:
    """Load the models, print the page's URL, and serve until Ctrl-C."""
    uvicorn = _require_extra()
    app = create_app(model_paths, copies=copies, data_dir=data_dir)
    if host not in LOCAL_HOSTS:
        print(f"warning: serving on {host}: the page and its API are reachable from other machines, "
              "with no login; use --host 127.0.0.1 to keep them on this one", file=sys.stderr)
    listening = _listen(host, port)  # a busy port or an unknown host is said here, before "serving"
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(app.state.served)} at http://{shown}:{port}/ "
          f"(API: http://{shown}:{port}/docs); Ctrl-C stops", flush=True)
    _run_server(uvicorn, app, listening)


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds it), or a one-line ValueError saying why not."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(info[0], socket.SOCK_STREAM)
    except OSError as error:
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind(info[4])
    except OSError as error:
        listening.close()
        raise ValueError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return listening


def _run_server(uvicorn, app, listening: socket.socket) -> None:
    """Serve ``app`` on the bound socket until Ctrl-C (uvicorn handles the signal)."""
    host, port = listening.getsockname()[:2]
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run(sockets=[listening])
