"""How many predictions per second `handgrad serve` answers, and how long each takes.

    flock /tmp/handgrad-heavy.lock python benchmarks/serve_load.py [--seconds 4] [--copies 2]
                                  [--json benchmarks/results/serve_load.json]

`handgrad serve` runs as its own process (as a user starts it, default options but --copies)
on the digits MLP (64-100-10, the `handgrad train` default) and the book's SimpleConvNet on
28x28 MNIST images (30 filters 5x5, 100 hidden); clients in this process send POST predict
requests back to back, each waiting for its answer, with 1 and 8 clients at once, for
--seconds each after a warm-up. Every answer is what the page gets: probabilities, every
layer's output, the saliency map and the trace's warnings. "pixels" sends a test image as
numbers; "drawing" sends a 280x280 PNG data URL, as the page does while you draw (decoded and
prepared as the dataset's images were made). The weights are random (speed does not depend on
them). Clients and server share the machine's cores, as on a laptop.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

import handgrad as hg
from machine import machine_line, write_results

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drawing_url() -> str:
    """A hand-drawn-looking 7 on a 280x280 black canvas, as the page's canvas sends it."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (280, 280), "black")
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill="white", width=22, joint="curve")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def run_clients(url: str, body: dict, clients: int, seconds: float) -> dict:
    """Each client posts ``body`` back to back for ``seconds``; latencies of every answer."""
    import httpx

    latencies, sizes, stop = [], [], time.monotonic() + seconds
    lock = threading.Lock()

    def client():
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < stop:
                start = time.perf_counter()
                response = http.post(url, json=body)
                elapsed = time.perf_counter() - start
                assert response.status_code == 200, response.text[:200]
                with lock:
                    latencies.append(elapsed)
                    sizes.append(len(response.content))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "requests_per_second": len(ms) / wall, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "answer_kib": float(np.mean(sizes)) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--copies", type=int, default=2)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "serve_load.json"))
    args = parser.parse_args()
    print(machine_line(), flush=True)
    folder = Path(tempfile.mkdtemp())
    hg.save(hg.mlp(64, [100], 10, seed=0), folder / "digits-mlp.safetensors", metadata={"dataset": "digits"})
    hg.save(hg.model.SimpleConvNet(seed=0), folder / "mnist-cnn.safetensors", metadata={"dataset": "mnist"})
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "handgrad", "serve", str(folder / "digits-mlp.safetensors"),
                               str(folder / "mnist-cnn.safetensors"), "--port", str(port), "--copies",
                               str(args.copies)], stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/models"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(base, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        _, (x_test, _) = hg.data.load_dataset("digits")
        mnist_like = np.zeros((28, 28))
        mnist_like[4:24, 4:24] = np.kron(x_test[0].reshape(8, 8), np.ones((2, 2))).repeat(5, 0)[:20].repeat(5, 1)[:, :20]
        cases = [("digits-mlp", "pixels", {"pixels": x_test[0].reshape(8, 8).tolist()}),
                 ("mnist-cnn", "pixels", {"pixels": mnist_like.tolist()}),
                 ("digits-mlp", "drawing", {"image": drawing_url()}),
                 ("mnist-cnn", "drawing", {"image": drawing_url()})]
        rows = []
        head = f"{'model':<12} {'input':<8} {'clients':>7} {'requests/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'answer KiB':>10}"
        print(f"handgrad serve, --copies {args.copies}, {args.seconds:g} s per row\n{head}\n{'-' * len(head)}", flush=True)
        for name, kind, body in cases:
            run_clients(f"{base}/{name}/predict", body, 2, 1.0)  # warm-up: imports, first allocations
            for clients in (1, 8):
                result = run_clients(f"{base}/{name}/predict", body, clients, args.seconds)
                rows.append({"model": name, "input": kind, "clients": clients, **result})
                print(f"{name:<12} {kind:<8} {clients:>7} {result['requests_per_second']:>10.0f} "
                      f"{result['p50_ms']:>8.1f} {result['p99_ms']:>8.1f} {result['answer_kib']:>10.0f}", flush=True)
    finally:
        server.terminate()
        server.wait(20)
    path = write_results(args.json, {"copies": args.copies, "seconds_per_row": args.seconds, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
