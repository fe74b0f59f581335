"""README's pictures of the web page: `handgrad serve` on two trained models, driven by headless
Chromium (Debian's package, through Playwright's Python package), as tests/test_serve_browser.py
drives it.

    python -c "import handgrad as hg; (x, t), _ = hg.data.load_dataset('mnist', flatten=False); \
        m = hg.model.SimpleConvNet(seed=0); \
        hg.fit(m, hg.optim.Adam(lr=1e-3), (x[:6000], t[:6000]), epochs=1, batch_size=100, seed=0); \
        hg.save(m, 'mnist-cnn.safetensors', metadata={'dataset': 'mnist'})"
    handgrad train --dataset shakespeare --model gpt --n-layer 2 --n-head 4 --n-embd 48 --block-size 48 \
        --max-steps 200 --eval-interval 200 --eval-iters 4 --lr 5e-3 --warmup 20 --out shakespeare-gpt
    python benchmarks/serve_screenshots.py mnist-cnn.safetensors shakespeare-gpt/model.safetensors \
        [--data-dir ../shared/data] [--out docs/img]

(README's: the ConvNet 88.9 % right on the first 2,000 test images, the GPT at validation loss
2.49 after 200 steps, about 10 and 15 seconds of training: enough to show, not yet fluent.)
Writes serve-image.png (a test image, its prediction, saliency and every layer) and
serve-text.png (200 generated characters shaded by probability, one token's top 5, attention).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image_model")
    parser.add_argument("text_model")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, "-m", "handgrad", "serve", args.image_model, args.text_model, "--port", str(port)]
    server = subprocess.Popen(command + (["--data-dir", args.data_dir] if args.data_dir else []))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                names = urllib.request.urlopen(f"{url}/api/models", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        import json

        image_name, text_name = (m["name"] for m in json.loads(names))
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 1250})
            page.goto(f"{url}/?model={image_name}")
            page.wait_for_selector("#image-view:not([hidden])")
            page.click("#random")
            page.wait_for_function("document.querySelectorAll('#layers .layer').length > 0")
            page.screenshot(path=out / "serve-image.png")
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/?model={text_name}")
            page.wait_for_selector("#text-view:not([hidden])")
            page.fill("#prompt", "ROMEO:")
            page.fill("#length", "200")
            page.fill("#seed", "0")
            page.click("#generate")
            page.wait_for_function("document.querySelectorAll('#output .tok').length === 200")
            page.wait_for_function("document.querySelectorAll('#attention canvas').length > 0")
            page.hover("#output .tok >> nth=30")
            page.screenshot(path=out / "serve-text.png")
            browser.close()
        print(f"wrote {out / 'serve-image.png'} and {out / 'serve-text.png'}")
    finally:
        server.terminate()
        server.wait(20)


if __name__ == "__main__":
    main()
