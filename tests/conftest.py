import os
from pathlib import Path

from hypothesis import HealthCheck, settings

# Gradient checks call forward hundreds of times per example: no per-example deadline, and a
# modest number of examples so the suite stays quick on a 2-core CI machine. The default run is
# derandomized, so CI sees the same examples every time; HYPOTHESIS_PROFILE=thorough searches
# 500 fresh random examples per test.
settings.register_profile("default", max_examples=40, deadline=None, derandomize=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def torch():
    """PyTorch, for parity tests. Without it they skip; with HANDGRAD_REQUIRE_TORCH=1 (CI) a
    missing or broken install fails them instead of skipping them."""
    if os.environ.get("HANDGRAD_REQUIRE_TORCH"):
        import torch as module
    else:
        module = pytest.importorskip("torch")
    return module


#: The shared data root the tests read, as a user would pass it with --data-dir: HANDGRAD_TEST_DATA,
#: else ../shared/data beside the checkout. Tests that need a dataset skip when it is absent.
SHARED_DATA = Path(os.environ.get("HANDGRAD_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's package) driven by Playwright's Python package, for the page's
    tests (tests/test_serve_browser.py and tests/test_serve_words_browser.py, which skip without
    them)."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                                     headless=True, args=["--no-sandbox"])
        yield launched
        launched.close()
