"""``handgrad serve``: a web page to draw a digit or type a prompt and watch every layer and
gradient of your own trained model, and the JSON API behind it.

FastAPI and uvicorn are an optional extra (``pip install "handgrad[serve]"``), imported only
when serving; :mod:`handgrad.serve.models` computes everything with NumPy alone.

What it guards against (no login, so the defaults keep it on this machine):

* It listens on 127.0.0.1 unless told otherwise (another host prints a warning).
* Bound to a loopback address, it answers only requests whose ``Host`` header names
  ``localhost``, ``127.0.0.1`` or ``[::1]`` (any port), and 400 to others: DNS rebinding (a web
  page whose name is then pointed at 127.0.0.1) would otherwise let any site the user visits
  read the API. Starlette's TrustedHostMiddleware does the check.
* Request bodies over 1 MiB are refused (413); a drawing's pixels are counted on its header,
  before decoding (over 1024x1024: 413), and at most 2 drawings are decoded at once.
* Each model computes at most ``copies`` requests at once (``copies`` from 1 to 64, checked
  before loading); other requests wait without holding a thread, at most 64 per model, and the
  next is answered 503 with ``Retry-After``: a queue on one model never delays the page or the
  other models.
* Numbers must be finite in the model's dtype; no answer carries NaN or Infinity (invalid JSON);
  a model that cannot be loaded or described (NaN weights, a vocabulary that is not text) is
  refused at start, in one line naming its file.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

# NumPy only, no web framework: the command line may check --copies against it.
from .models import MAX_COPIES

__all__ = ["serve", "create_app", "MissingServeExtra", "LOCAL_HOSTS", "MAX_COPIES"]


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
    """Load the models, print the page's URL, and serve until Ctrl-C. Bound to a loopback
    address, the server answers only ``Host: localhost``, ``127.0.0.1`` or ``[::1]`` (see the
    module docstring)."""
    uvicorn = _require_extra()
    app = create_app(model_paths, copies=copies, data_dir=data_dir)
    if host not in LOCAL_HOSTS:
        print(f"warning: serving on {host}: the page and its API are reachable from other machines, "
              "with no login; use --host 127.0.0.1 to keep them on this one", file=sys.stderr)
    listening = _listen(host, port)  # a busy port or an unknown host is said here, before "serving"
    if _is_loopback(listening.getsockname()[0]):
        from .app import guard_host_header

        guard_host_header(app)
    shown = f"[{host}]" if ":" in host else host
    for name, model in app.state.served.items():
        missing = getattr(getattr(model, "test_images", None), "missing", None)
        if missing:
            print(f"{name}: the page's Random test image is off: {missing}", file=sys.stderr)
        groups_missing = getattr(getattr(model, "groups", None), "missing", None)
        if groups_missing:
            print(f"{name}: generated words are not marked (training set, test set, new): {groups_missing}",
                  file=sys.stderr)
    print(f"serving {', '.join(app.state.served)} at http://{shown}:{port}/ "
          f"(API: http://{shown}:{port}/docs); Ctrl-C stops", flush=True)
    _run_server(uvicorn, app, listening)


def _is_loopback(address: str) -> bool:
    """Whether the bound ``address`` (an IP address) is this machine's loopback."""
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


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
