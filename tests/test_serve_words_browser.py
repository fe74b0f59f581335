"""The page's word view in a real browser (issue 25): `handgrad serve` on makemore models started
as a command, headless Chromium (Debian's package, driven by Playwright's Python package)
clicking Generate and reading the words, each character shaded by its probability, the top 5
on hover, and each word's group. Skips as tests/test_serve_browser.py does: only when Chromium or
Playwright is absent, and never with HANDGRAD_REQUIRE_BROWSER=1."""

import json
import os
import shutil
import urllib.request

import pytest

REQUIRED = bool(os.environ.get("HANDGRAD_REQUIRE_BROWSER"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not REQUIRED:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed", allow_module_level=True)
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("fastapi")
assert CHROMIUM is not None, "HANDGRAD_REQUIRE_BROWSER is set but chromium is not installed"


import handgrad as hg  # noqa: E402

from test_serve_browser import check_screenshot, open_page, running_server  # noqa: E402
from test_serve_words import chain_bigram, make_word_models, words_record  # noqa: E402

from handgrad.data.words import read_words  # noqa: E402

GROUP_LABELS = {"train": "in the training set", "test": "in the test set", "new": "new"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`handgrad serve` on a trained Transformer, the chain bigram of a training word, and one
    whose words file is gone, as a user starts it; stopped with Ctrl-C's signal."""
    folder = tmp_path_factory.mktemp("words-browser")
    paths = make_word_models(folder)
    gone = folder / "gone.txt"
    shutil.copy(paths["words"], gone)
    paths["pets-gone"] = folder / "pets-gone.safetensors"
    hg.save(chain_bigram(read_words(gone), "zed"), paths["pets-gone"],
            metadata={"dataset": "names", "words": words_record(gone)})
    gone.unlink()
    with running_server([paths["pets-transformer"], paths["pets-train"], paths["pets-gone"]], folder,
                        "--copies", "1") as (url, finished):
        yield url
    out, err = finished
    assert f"serving pets-transformer, pets-train, pets-gone at {url}/" in out
    assert "pets-gone: generated words are not marked" in err


def api_words(url, name, **body):
    request = urllib.request.Request(f"{url}/api/models/{name}/words", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))


WORDS_ON_THE_PAGE = """items => items.map(item => ({
    word: item.dataset.word, group: item.dataset.group || null,
    label: item.querySelector('.group') ? item.querySelector('.group').textContent : null,
    characters: [...item.querySelectorAll('.tok')].map(s => ({
        text: s.textContent, end: s.classList.contains('end'), id: Number(s.dataset.id),
        probability: Number(s.dataset.probability), background: s.style.background})),
}))"""


def test_generate_words_and_see_each_characters_probability_and_group(server, browser, tmp_path):
    page, errors = open_page(browser, f"{server}/?model=pets-transformer", 900, "words")
    options = page.eval_on_selector_all("#model option", "options => options.map(o => o.text)")
    assert options == ["pets-transformer: words (pets.txt)", "pets-train: words (pets.txt)",
                       "pets-gone: words (gone.txt)"]
    # 1,144 as nanoGPT, + 8 x 26 for makemore's own output matrix
    assert page.text_content("#model-info") == ("transformer (GPT: 1 layers, 2 heads, 8 wide, context 6, "
                                                "vocabulary 26, 1,352 parameters)")
    assert page.is_hidden("#text-view") and page.is_hidden("#image-view")
    assert page.text_content("#groups-note").startswith("Each word is marked as makemore marks it")
    page.fill("#word-count", "12")
    page.fill("#word-seed", "2")
    page.click("#generate-words")
    page.wait_for_function("document.querySelectorAll('#words li').length === 12")
    shown = page.eval_on_selector_all("#words li", WORDS_ON_THE_PAGE)
    answer = api_words(server, "pets-transformer", count=12, temperature=1, top_k=None, seed=2)
    assert [w["word"] for w in shown] == [w["word"] for w in answer["words"]]
    for on_page, sent in zip(shown, answer["words"]):
        assert "".join(c["text"] for c in on_page["characters"] if not c["end"]) == on_page["word"]
        assert [c["probability"] for c in on_page["characters"]] == [c["probability"] for c in sent["characters"]]
        assert all(0 < c["probability"] <= 1 and c["background"].startswith("rgba(46, 160, 67")
                   for c in on_page["characters"])
        assert [c["text"] for c in on_page["characters"] if c["end"]] == (["."] if sent["ended"] else [])
        assert on_page["group"] == sent["group"] and on_page["label"] == GROUP_LABELS[sent["group"]]
    # Shaded by probability: a surer character is darker.
    alphas = {float(c["background"].split(",")[-1].rstrip(")")): c["probability"] for w in shown for c in w["characters"]}
    assert sorted(alphas, key=alphas.get) == sorted(alphas)
    counts = {g: sum(w["group"] == g for w in shown) for g in GROUP_LABELS}
    assert page.text_content("#words-summary") == (f"12 words: {counts['train']} in the training set, "
                                                   f"{counts['test']} in the test set, {counts['new']} new")
    page.hover("#words li >> nth=0 >> .tok >> nth=0")
    assert "the 5 most likely" in page.text_content("#tooltip") and page.is_visible("#tooltip")
    first = answer["words"][0]["characters"][0]  # in bold among the 5 when it is one of them
    assert page.locator("#tooltip div").count() == 6
    assert page.locator("#tooltip .chosen").count() == (first["id"] in [t["id"] for t in first["top"]])
    page.screenshot(path=tmp_path / "serve-words.png")
    check_screenshot(tmp_path / "serve-words.png", 1280, 900)
    assert errors == []


def test_a_word_of_the_training_set_is_labelled_so_and_ends_with_the_end_token(server, browser):
    page, errors = open_page(browser, f"{server}/?model=pets-train", 900, "words")
    page.click("#generate-words")  # ten words by default
    page.wait_for_function("document.querySelectorAll('#words li').length === 10")
    shown = page.eval_on_selector_all("#words li", WORDS_ON_THE_PAGE)
    assert {w["label"] for w in shown} == {"in the training set"} and {w["group"] for w in shown} == {"train"}
    assert all(w["characters"][-1]["end"] and w["characters"][-1]["id"] == 0 for w in shown)
    page.hover("#words li >> nth=0 >> .tok.end")
    assert page.text_content("#tooltip div").startswith(". (the end of the word): ")
    assert page.text_content("#words-summary") == "10 words: 10 in the training set, 0 in the test set, 0 new"
    assert errors == []


def test_without_its_words_file_the_page_says_why_the_words_are_not_marked(server, browser):
    page, errors = open_page(browser, f"{server}/?model=pets-gone", 900, "words")
    note = page.text_content("#groups-note")
    assert note.startswith("The words are not marked (in the training set, in the test set, new): the words it "
                           "learned are not here (") and "gone.txt: no such file" in note
    page.fill("#word-count", "3")
    page.click("#generate-words")
    page.wait_for_function("document.querySelectorAll('#words li').length === 3")
    assert page.locator("#words .group").count() == 0 and page.text_content("#words-summary") == "3 words"
    page.fill("#word-count", "0")  # refused by the server, said on the page
    page.click("#generate-words")
    page.wait_for_function("!document.querySelector('#error').hidden")
    assert page.text_content("#error") == "count must be a whole number from 1 to 100, got 0"
    page.select_option("#model", "pets-transformer")  # another model: its own view, the error gone
    assert page.is_hidden("#error") and page.locator("#words li").count() == 0
    assert errors == []
