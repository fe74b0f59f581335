"""handgrad serve with makemore's word models (issue 25): `handgrad train --data-file` models,
served as word models whatever their kind (the Transformer is a GPT with a vocabulary, yet no
text model), their new words with each character's probability (checked against the model's
own forward, computed here again), the same words as `handgrad generate` for a seed, each
word's group (in the training set, in the test set, new), and what it refuses."""

import json
import math
import shutil

import numpy as np
import pytest

pytest.importorskip("fastapi")

import handgrad as hg  # noqa: E402
from handgrad import functions as F  # noqa: E402
from handgrad.cli import main  # noqa: E402
from handgrad.data.words import Words, contexts, makemore_split, read_words, sequences  # noqa: E402
from handgrad.model.makemore import (MAKEMORE_MODELS, _context_size, bigram, generate_words,  # noqa: E402
                                     sample_words, transformer)
from handgrad.serve import create_app  # noqa: E402
from handgrad.serve.models import MAX_WORDS, TOP_ALTERNATIVES  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

#: 30 different names: makemore's split holds 3 of them out (min(1000, 10 %)).
PETS = ["rex", "bella", "max", "luna", "coco", "milo", "daisy", "rocky", "lola", "toby", "ziggy", "oscar", "ruby",
        "jack", "sadie", "buddy", "molly", "bear", "duke", "rosie", "leo", "nala", "zoe", "finn", "gus", "ivy", "otis",
        "pip", "hank", "wren"]
#: A tiny run of each kind: a GPT (sequences), an MLP with BatchNorm over contexts (Zero to Hero's
#: split), a GRU (sequences, read by a recurrent layer).
TRAINED = {"pets-transformer": ["--model", "transformer", "--n-layer", "1", "--n-head", "2", "--n-embd", "8"],
           "pets-mlp-bn": ["--model", "mlp-bn", "--n-embd", "4", "--hidden", "16"],
           "pets-gru": ["--model", "gru", "--n-embd", "8", "--hidden", "8"]}
#: The logit of the next character of a chain bigram's word; every other logit is 0.
CHAIN_LOGIT = 20.0


def words_record(path, split="makemore", dataset="names"):
    """The ``words`` metadata ``handgrad train --data-file`` writes (cli/train.py)."""
    words = read_words(path)
    return json.dumps({"dataset": dataset, "data_file": str(path.resolve()), "split": split, "chars": words.chars,
                       "block_size": words.block_size})


def chain_bigram(words: Words, word: str):
    """A bigram whose every draw is ``word`` (then the end token), all but surely: the logit of
    each next character of the word is CHAIN_LOGIT, every other 0. Needs a word without a
    repeated character (one successor per character)."""
    assert len(set(word)) == len(word)
    model = bigram(words.vocab_size)
    ids = [0, *words.encode(word).tolist(), 0]
    for prev, nxt in zip(ids[:-1], ids[1:]):
        model.layers[0].params["W"][prev, nxt] = CHAIN_LOGIT
    return model


def chain_probability(V: int) -> float:
    return math.exp(CHAIN_LOGIT) / (math.exp(CHAIN_LOGIT) + V - 1)


def make_word_models(folder):
    """``{name: path}``: the three trained models of TRAINED, a few steps each, on a file of
    PETS; and three chain bigrams whose word is in the training split (``pets-train``), in the
    test split (``pets-test``) or in neither (``pets-new``: "zed"), saved with the metadata the
    command writes. Also ``{"words": the file}``."""
    data = folder / "pets.txt"
    data.write_text("\n".join(PETS) + "\n")
    paths = {"words": data}
    for name, options in TRAINED.items():
        out = folder / name
        assert main(["train", "--data-file", str(data), *options, "--max-steps", "30", "--eval-interval", "15",
                     "--eval-iters", "2", "--out", str(out)]) == 0
        paths[name] = out / "model.safetensors"
    words = read_words(data)
    train, test = makemore_split(words)
    # A word shorter than the longest, so that the end token is drawn after it (at the longest
    # length the draw stops before it, as makemore's does), of letters each used once.
    longest = max(map(len, PETS))
    distinct = lambda part: next(w for w in part.words if len(set(w)) == len(w) < longest)  # noqa: E731
    for group, word in (("train", distinct(train)), ("test", distinct(test)), ("new", "zed")):
        paths[f"pets-{group}"] = folder / f"pets-{group}.safetensors"
        hg.save(chain_bigram(words, word), paths[f"pets-{group}"], metadata={"dataset": "names",
                                                                            "words": words_record(data)})
    return paths


@pytest.fixture(scope="module")
def word_models(tmp_path_factory):
    return make_word_models(tmp_path_factory.mktemp("words"))


@pytest.fixture(scope="module")
def client(word_models):
    paths = [path for name, path in word_models.items() if name != "words"]
    with TestClient(create_app(paths, copies=2)) as c:
        yield c


def ask(client, name, **body):
    response = client.post(f"/api/models/{name}/words", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# --- what it answers --------------------------------------------------------------------------------


def test_every_word_model_is_listed_as_words_the_transformer_too(client):
    listing = {m["name"]: m for m in client.get("/api/models").json()}
    assert list(listing) == [*TRAINED, "pets-train", "pets-test", "pets-new"]
    chars = read_words_chars()
    for m in listing.values():
        assert m["kind"] == "words" and m["source"] == "pets.txt" and m["characters"] == chars
        assert m["groups"] is True and m["groups_missing"] is None
        assert m["max_count"] == MAX_WORDS and m["max_length"] == max(map(len, PETS))
    transformer = listing["pets-transformer"]
    assert transformer["description"].startswith("transformer (GPT: 1 layers, 2 heads, 8 wide")
    assert transformer["split"] == "makemore" and listing["pets-mlp-bn"]["split"] == "zero-to-hero"
    assert listing["pets-mlp-bn"]["description"].startswith("mlp-bn: Embedding → Reshape → Affine → BatchNorm")
    assert listing["pets-mlp-bn"]["description"].endswith(", the last 3 characters)")
    assert listing["pets-gru"]["description"].startswith("gru: Embedding → GRU → Affine")
    assert listing["pets-train"]["description"].startswith("bigram: Embedding")
    assert listing["pets-train"]["parameters"] == (len(chars) + 1) ** 2


def read_words_chars():
    return "".join(sorted(set("".join(PETS))))


@pytest.mark.parametrize("name", list(TRAINED))
def test_each_characters_probability_is_the_models_own_forward_on_the_word(client, word_models, name):
    """The probability of every drawn character (and the end token), and its top 5, against the
    model's forward on the whole word computed here (contexts for the MLP, the word from its
    start for the GPT and the GRU): the answer's come from the draw, one step at a time."""
    # At temperature 1.5 the draws are not the model's own probabilities: the answer's must be.
    answer = ask(client, name, count=12, temperature=1.5, seed=5)
    model = hg.load(word_models[name])
    chars = read_words_chars()
    assert len(answer["words"]) == 12 and answer["seed"] == 5 and answer["groups_missing"] is None
    for entry in answer["words"]:
        word, characters = entry["word"], entry["characters"]
        drawn = [c["id"] for c in characters]
        assert "".join(c["character"] for c in characters if c["id"]) == word
        assert entry["ended"] == (drawn[-1] == 0) and 0 not in drawn[:-1]
        assert len(characters) == len(word) + entry["ended"]
        one = Words((word,), chars)
        context = _context_size(model)
        with model.mode(False):
            if context is not None:
                logits = model.predict(contexts(one, context)[0])                    # (len + 1, V)
            else:
                logits = model.predict(sequences(one, len(word) + 1)[0])[0]         # (len + 1, V)
        expected = F.softmax(logits.astype(np.float64))[:len(characters)]
        for step, c in enumerate(characters):
            p = expected[step]
            assert 0 < c["probability"] <= 1
            np.testing.assert_allclose(c["probability"], p[c["id"]], rtol=1e-4, atol=1e-7)  # float32 model
            top = c["top"]
            assert len(top) == TOP_ALTERNATIVES and sum(t["probability"] for t in top) <= 1 + 1e-9
            assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
            np.testing.assert_allclose([t["probability"] for t in top], np.sort(p)[::-1][:TOP_ALTERNATIVES],
                                       rtol=1e-4, atol=1e-7)
            assert all(t["character"] == (chars[t["id"] - 1] if t["id"] else None) for t in top)


@pytest.mark.parametrize("name", list(TRAINED))
def test_a_seed_gives_the_same_words_again_and_those_of_handgrad_generate(client, word_models, name):
    first = ask(client, name, count=20, temperature=1.3, top_k=8, seed=11)
    assert ask(client, name, count=20, temperature=1.3, top_k=8, seed=11) == first
    model, words = hg.load(word_models[name]), Words((), read_words_chars())
    same = generate_words(model, words, 20, max_length=max(map(len, PETS)), temperature=1.3, top_k=8, seed=11)
    assert [w["word"] for w in first["words"]] == same
    other = ask(client, name, count=20, temperature=1.3, top_k=8, seed=12)
    assert [w["word"] for w in other["words"]] != same


def test_temperature_zero_and_top_k_one_draw_the_most_likely_every_time(client):
    for body in ({"temperature": 0}, {"top_k": 1, "seed": 3}):
        answer = ask(client, "pets-transformer", count=4, **body)
        assert len({w["word"] for w in answer["words"]}) == 1
        for c in answer["words"][0]["characters"]:
            assert c["id"] == c["top"][0]["id"] and c["probability"] == c["top"][0]["probability"]


@pytest.mark.parametrize("group", ["train", "test", "new"])
def test_each_word_is_marked_as_in_the_training_set_in_the_test_set_or_new(client, word_models, group):
    """Each chain bigram draws its one word: a word of the training split, of the test split,
    or "zed", in neither; the groups come from the file read again and split as training did."""
    words = read_words(word_models["words"])
    train, test = makemore_split(words)
    answer = ask(client, f"pets-{group}", count=3, seed=0)
    word = answer["words"][0]["word"]
    assert {w["word"] for w in answer["words"]} == {word}
    assert {"train": word in train.words, "test": word in test.words, "new": word == "zed"}[group]
    assert [w["group"] for w in answer["words"]] == [group] * 3
    assert answer["words"][0]["ended"] and answer["words"][0]["characters"][-1]["id"] == 0
    p = chain_probability(words.vocab_size)
    for c in answer["words"][0]["characters"]:
        assert c["probability"] == pytest.approx(p, rel=1e-6) and c["top"][0]["id"] == c["id"]


def test_a_word_of_the_longest_length_is_cut_before_its_end_token_as_makemore_draws(word_models, tmp_path):
    """makemore draws block_size - 1 characters: a word of the longest length has no room for
    the end token, and says so (``ended`` false, no end entry)."""
    words = read_words(word_models["words"])
    path = tmp_path / "daisy.safetensors"
    hg.save(chain_bigram(words, "daisy"), path, metadata={"dataset": "names", "words": words_record(word_models["words"])})
    with TestClient(create_app([path], copies=1)) as c:
        word = ask(c, "daisy", count=1, seed=0)["words"][0]
    assert (word["word"], word["ended"], word["group"]) == ("daisy", False, "train" if "daisy" in
                                                             makemore_split(words)[0].words else "test")
    assert [ch["character"] for ch in word["characters"]] == list("daisy")


def test_without_the_words_file_the_words_come_unmarked_and_the_listing_says_why(word_models, tmp_path):
    """The file the model learned is gone: the server still starts and draws words, marks none
    (group null, never a 500) and says why, once, at start-up."""
    data = tmp_path / "gone.txt"
    shutil.copy(word_models["words"], data)
    path = tmp_path / "gone.safetensors"
    hg.save(chain_bigram(read_words(data), "zed"), path, metadata={"dataset": "names", "words": words_record(data)})
    data.unlink()
    with TestClient(create_app([path], copies=1)) as c:
        listing = c.get("/api/models").json()[0]
        assert listing["groups"] is False
        assert listing["groups_missing"].startswith("the words it learned are not here (")
        assert "gone.txt: no such file" in listing["groups_missing"]
        answer = ask(c, "gone", count=2, seed=0)
    assert answer["groups_missing"] == listing["groups_missing"]
    assert [(w["word"], w["group"]) for w in answer["words"]] == [("zed", None)] * 2


def test_without_the_names_a_names_model_says_where_to_find_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    words = Words.of(["emma", "olivia", "ava"] * 4)
    record = json.dumps({"dataset": "names", "data_file": None, "split": "makemore", "chars": words.chars,
                         "block_size": words.block_size})
    path = tmp_path / "names-bigram.safetensors"
    hg.save(bigram(words.vocab_size), path, metadata={"dataset": "names", "words": record})
    with TestClient(create_app([path], copies=1, data_dir=tmp_path / "empty")) as c:
        listing = c.get("/api/models").json()[0]
        assert listing["source"] == "names" and listing["groups"] is False
        assert "names.txt not found in" in listing["groups_missing"]
        assert listing["groups_missing"].endswith("start the server with --data-dir DIR holding names/names.txt")
        assert ask(c, "names-bigram", count=1, seed=0)["words"][0]["group"] is None


def test_a_words_file_changed_since_training_is_not_used_to_mark_words(word_models, tmp_path):
    """Groups from another file's words would be wrong: the characters no longer match, so none."""
    data = tmp_path / "changed.txt"
    shutil.copy(word_models["words"], data)
    path = tmp_path / "changed.safetensors"
    hg.save(chain_bigram(read_words(data), "zed"), path, metadata={"dataset": "names", "words": words_record(data)})
    data.write_text("\n".join(PETS + ["quokka"]))
    with TestClient(create_app([path], copies=1)) as c:
        missing = c.get("/api/models").json()[0]["groups_missing"]
    assert missing.startswith("changed.txt is not the file the model learned: its characters ")


@pytest.mark.parametrize("name", list(MAKEMORE_MODELS))
def test_sample_words_draws_generate_words_words_and_keeps_the_models_probabilities(name):
    """The page's words are ``handgrad generate``'s: sample_words makes the same draws from the
    same seed as generate_words (which it leaves as it was), and keeps each step's softmax."""
    words = Words.of(["anna", "bob", "carla", "dave"])
    builder = MAKEMORE_MODELS[name][0]
    if name == "transformer":
        model = transformer(words.vocab_size, words.block_size, n_layer=1, n_head=2, n_embd=8, seed=0)
    elif name in ("mlp-bn", "wavenet"):
        model = builder(words.vocab_size, block_size=4, seed=0)
    elif name in ("mlp-words", "bow"):  # as many positions as the longest word + 1
        model = builder(words.vocab_size, words.block_size, n_embd=8, n_embd2=8, seed=0)
    else:
        model = builder(words.vocab_size, seed=0)
    if name == "bigram":  # from zeros every character is as likely: give it something to say
        model.params["0.W"][...] = np.random.default_rng(0).standard_normal((words.vocab_size,) * 2)
    ids, probabilities = sample_words(model, words, 9, temperature=0.7, top_k=3, seed=4)
    assert ids.shape == (9, 5) and probabilities.shape == (9, 5, words.vocab_size)
    assert [words.decode(row) for row in ids] == generate_words(model, words, 9, temperature=0.7, top_k=3, seed=4)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1, rtol=0, atol=1e-12)
    drawn = np.take_along_axis(probabilities, ids[..., None], axis=-1)[..., 0]
    ranks = (probabilities > drawn[..., None]).sum(axis=-1)
    assert (ranks < 3).all()  # top_k 3: each drawn character among the model's 3 most likely


# --- what it refuses --------------------------------------------------------------------------------


V = len(read_words_chars()) + 1


@pytest.mark.parametrize("body, message", [
    ({"count": 0}, f"count must be a whole number from 1 to {MAX_WORDS}, got 0"),
    ({"count": MAX_WORDS + 1}, f"count must be a whole number from 1 to {MAX_WORDS}, got {MAX_WORDS + 1}"),
    ({"count": "ten"}, "body.count: Input should be a valid integer"),
    ({"temperature": -0.5}, "temperature must be a finite number >= 0 (0: always the most likely), got -0.5"),
    ({"top_k": 0}, f"top_k must be from 1 to {V} (the model's {V - 1} characters and the end token), or null"),
    ({"top_k": V + 1}, f"top_k must be from 1 to {V} (the model's {V - 1} characters and the end token), or null"),
    ({"seed": -1}, "body.seed: Input should be greater than or equal to 0"),
    ({"seed": 1.5}, "body.seed: Input should be a valid integer"),
])
def test_bad_values_are_refused_in_one_line(client, body, message):
    response = client.post("/api/models/pets-gru/words", json=body)
    assert response.status_code == 422 and message in response.json()["detail"], response.text
    assert "\n" not in response.json()["detail"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity"])
def test_a_temperature_of_nan_or_infinity_is_refused(client, literal):
    response = client.post("/api/models/pets-gru/words", content=f'{{"temperature": {literal}}}',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("temperature must be a finite number >= 0")


def test_a_word_model_answers_no_text_request_and_a_text_model_no_words(client, tmp_path):
    refused = client.post("/api/models/pets-transformer/generate", json={"prompt": "", "length": 3})
    assert refused.status_code == 400
    assert refused.json()["detail"] == "model pets-transformer is a word model (makemore); this needs a text model"
    gpt = tmp_path / "tiny-gpt.safetensors"
    hg.save(hg.model.GPT(5, 8, 1, 1, 4, seed=0, vocab="\nabcd"), gpt)
    with TestClient(create_app([gpt], copies=1)) as c:
        answer = c.post("/api/models/tiny-gpt/words", json={})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "model tiny-gpt is a text model; this needs a word model (makemore)"
    unknown = client.post("/api/models/nobody/words", json={})
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("unknown model 'nobody'")


def test_a_model_whose_logits_overflow_says_so_instead_of_drawing_words(tmp_path):
    """Finite weights (so it is served) whose output overflows float32: no character can be
    drawn from infinite logits; the answer is a 500 that says so, in JSON, not a word of id 0."""
    from handgrad.model.makemore import mlp_bn

    words = Words.of(["anna", "bob", "carla"])
    model = mlp_bn(words.vocab_size, seed=0)
    model.layers[-1].params["W"][...] = 3e38
    path = tmp_path / "overflow.safetensors"
    record = json.dumps({"dataset": "names", "data_file": None, "split": "zero-to-hero", "chars": words.chars,
                         "block_size": words.block_size})
    hg.save(model, path, metadata={"words": record})
    with TestClient(create_app([path], copies=1, data_dir=tmp_path), raise_server_exceptions=False) as c:
        response = c.post("/api/models/overflow/words", json={"count": 2, "seed": 0})
    assert response.status_code == 500
    assert response.json()["detail"] == ("model overflow: its logits of the next character hold NaN or infinity "
                                         "(weights or values overflowing its dtype); no word can be drawn")


def test_a_malformed_words_record_is_refused_at_start_in_one_line(tmp_path):
    path = tmp_path / "broken.safetensors"
    hg.save(bigram(4), path, metadata={"words": "{not json"})
    with pytest.raises(ValueError, match=r"broken.safetensors: its record of the words it learned is malformed"):
        create_app([path], copies=1)


def test_a_model_scoring_other_characters_than_its_record_is_refused_at_start(tmp_path):
    path = tmp_path / "mismatch.safetensors"
    record = json.dumps({"dataset": "names", "data_file": None, "split": "makemore", "chars": "abc", "block_size": 4})
    hg.save(bigram(6), path, metadata={"words": record})
    with pytest.raises(ValueError, match=r"mismatch.safetensors: the model scores 6 next characters, but the words it "
                                         r"learned have 3 characters and the end token \(4\)"):
        create_app([path], copies=1)
