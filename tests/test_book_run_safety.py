"""`handgrad book-run` never unpickles (issue 22), decides the chapter stand-ins by the file a
script imports rather than by its folder's name, and puts back everything it changed in the
process (issue 21).

Every planted pickle here carries a live payload: loading it creates a marker file. Each test first
proves the payload fires outside book-run, then that under book-run the marker never appears.
"""

import _pickle
import pickle
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from handgrad.book import BOOK_FILE_SHA256, CHAPTER_MODULES
from handgrad.book.run import is_books_file, run_script

BOOK = Path(__file__).resolve().parents[2] / "shared" / "book1"
MNIST = SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz"

needs_book = pytest.mark.skipif(not (BOOK / "common").is_dir(), reason="the book's repository is not in ../shared/book1")
needs_mnist = pytest.mark.skipif(not MNIST.is_file(), reason="MNIST is not in the shared data")


class Payload:
    """Unpickled, it runs code: it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def plant(path, marker, npy=False):
    """Write a pickle (or an object-array .npy) whose payload creates ``marker``, and check that
    the payload is live: loading it outside book-run does create the marker."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if npy:
        np.save(path, np.array([Payload(marker)], dtype=object), allow_pickle=True)
        np.load(path, allow_pickle=True)
    else:
        path.write_bytes(pickle.dumps(Payload(marker)))
        pickle.loads(path.read_bytes())
    assert marker.exists(), "the planted payload must be live for the test to mean anything"
    marker.unlink()
    return path


def book_run(script, cwd, preamble=""):
    """``handgrad book-run`` on ``script`` in a new process: (exit status, stdout, stderr)."""
    code = f"import sys; {preamble}from handgrad.cli import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "book-run", "--out", str(cwd / "out"), "--data-dir", str(SHARED_DATA),
               str(script)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, check=False)
    return done.returncode, done.stdout, done.stderr


def refused_in_one_line(status, err):
    """The refusal: status 1, exactly one line on stderr, no traceback. Returns the line."""
    assert status == 1, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("handgrad book-run: refused to unpickle "), lines[0]
    assert "book-run never unpickles" in lines[0]
    return lines[0]


@needs_book
@needs_mnist
def test_book_run_refuses_the_sample_weight_pickle_that_ch03_loads_itself(tmp_path):
    marker = tmp_path / "marker"
    weights = plant(tmp_path / "ch03" / "sample_weight.pkl", marker)
    shutil.copy(BOOK / "ch03" / "neuralnet_mnist.py", tmp_path / "ch03")
    status, out, err = book_run(tmp_path / "ch03" / "neuralnet_mnist.py", tmp_path)
    line = refused_in_one_line(status, err)
    assert f"{weights} (pickle.load, neuralnet_mnist.py line 17)" in line
    # The book ships this file as a pickle and no script that trains it: the line says so.
    assert "sample_weight.pkl only as a pickle, with no script that trains it" in line
    assert not marker.exists()
    assert "Accuracy" not in out


SCRIPTS = {
    "pickle.load": "import pickle\nwith open('weights.pkl', 'rb') as f:\n    pickle.load(f)\n",
    "pickle.loads": "import pickle\nwith open('weights.pkl', 'rb') as f:\n    data = f.read()\npickle.loads(data)\n",
    "pickle.Unpickler": "import pickle\nwith open('weights.pkl', 'rb') as f:\n    pickle.Unpickler(f).load()\n",
    "a subclass of pickle.Unpickler": ("import pickle\nclass Mine(pickle.Unpickler):\n    pass\n"
                                       "with open('weights.pkl', 'rb') as f:\n    Mine(f).load()\n"),
    "pickle._Unpickler": "import pickle\nwith open('weights.pkl', 'rb') as f:\n    pickle._Unpickler(f).load()\n",
    "_pickle.load": "import _pickle\nwith open('weights.pkl', 'rb') as f:\n    _pickle.load(f)\n",
    "_pickle.loads": "import _pickle\nwith open('weights.pkl', 'rb') as f:\n    _pickle.loads(f.read())\n",
}


@pytest.mark.parametrize("how", list(SCRIPTS))
def test_book_run_refuses_every_pickle_entry_point_and_the_payload_never_runs(tmp_path, how):
    marker = tmp_path / "marker"
    weights = plant(tmp_path / "anywhere" / "weights.pkl", marker)
    script = tmp_path / "anywhere" / "reads.py"
    script.write_text(SCRIPTS[how])
    status, _, err = book_run(script, tmp_path)
    line = refused_in_one_line(status, err)
    if how.endswith("loads"):  # handed bytes, not a file: the line says how many and where from
        assert f"refused to unpickle {weights.stat().st_size} bytes ({how}, reads.py line" in line
    else:
        assert f"refused to unpickle {weights} (" in line
        assert "reads.py line" in line
    assert not marker.exists()


def test_book_run_refuses_numpy_load_of_an_object_array(tmp_path):
    marker = tmp_path / "marker"
    array = plant(tmp_path / "anywhere" / "objects.npy", marker, npy=True)
    script = tmp_path / "anywhere" / "reads.py"
    script.write_text("import numpy as np\nnp.load('objects.npy', allow_pickle=True)\n")
    status, _, err = book_run(script, tmp_path)
    line = refused_in_one_line(status, err)
    assert f"refused to unpickle {array} (pickle.load, reads.py line 2)" in line
    assert not marker.exists()


def test_book_run_refuses_an_unpickler_captured_before_the_run(tmp_path):
    """shelve took its own reference to pickle.Unpickler when it was imported, before book-run
    replaced the name; the audit hook on pickle.find_class refuses it all the same."""
    marker = tmp_path / "marker"
    weights = plant(tmp_path / "anywhere" / "weights.pkl", marker)
    script = tmp_path / "anywhere" / "reads.py"
    script.write_text("import shelve\nwith open('weights.pkl', 'rb') as f:\n    shelve.Unpickler(f).load()\n")
    status, _, err = book_run(script, tmp_path, preamble="import shelve; ")
    line = refused_in_one_line(status, err)
    assert f"refused to unpickle {weights} (an unpickler fetching builtins.exec, reads.py line 3)" in line
    assert not marker.exists()


def test_book_run_refusal_cannot_be_swallowed_by_the_scripts_except_exception(tmp_path):
    marker = tmp_path / "marker"
    plant(tmp_path / "anywhere" / "weights.pkl", marker)
    script = tmp_path / "anywhere" / "reads.py"
    script.write_text("import pickle\ntry:\n    pickle.load(open('weights.pkl', 'rb'))\nexcept Exception:\n"
                      "    print('carried on')\n")
    status, out, err = book_run(script, tmp_path)
    refused_in_one_line(status, err)
    assert "carried on" not in out and not marker.exists()


def copy_of_ch08(folder):
    shutil.copytree(BOOK / "ch08", folder)
    (folder / "loads_params.py").write_text(
        "import deep_convnet\nprint(deep_convnet.__name__)\n"
        "deep_convnet.DeepConvNet().load_params('deep_convnet_params.pkl')\n")
    return folder


@needs_book
def test_a_copy_of_ch08_in_a_folder_named_otherwise_gets_handgrads_deep_convnet_not_the_books_pickle(tmp_path):
    """The stand-in once applied only in a folder named ch08: a copy anywhere else ran the book's
    deep_convnet.py, whose load_params unpickled the planted file."""
    marker = tmp_path / "marker"
    folder = copy_of_ch08(tmp_path / "my_copy")
    planted = plant(folder / "deep_convnet_params.pkl", marker)
    status, out, err = book_run(folder / "loads_params.py", tmp_path)
    assert out.strip() == "handgrad.book.deep_convnet"
    assert status == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"handgrad book-run: error: {tmp_path / 'out' / 'deep_convnet_params.safetensors'}: "
                               "no such file (handgrad never unpickles")
    assert f"handgrad book-run --out {tmp_path / 'out'} ch08/train_deepnet.py" in lines[0]
    assert f"the pickle {planted} is never read" in lines[0]
    assert not marker.exists()


@needs_book
@needs_mnist
def test_the_books_own_misclassified_mnist_in_a_copy_of_ch08_never_reads_the_planted_pickle(tmp_path):
    marker = tmp_path / "marker"
    folder = copy_of_ch08(tmp_path / "elsewhere")
    plant(folder / "deep_convnet_params.pkl", marker)
    status, _, err = book_run(folder / "misclassified_mnist.py", tmp_path)
    assert status == 1 and "Traceback" not in err
    assert err.strip().startswith("handgrad book-run: error: ") and "ch08/train_deepnet.py" in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


@needs_book
def test_an_edited_deep_convnet_runs_as_it_is_and_its_pickle_is_refused_with_the_training_script(tmp_path):
    marker = tmp_path / "marker"
    folder = copy_of_ch08(tmp_path / "ch08")  # even in a folder named ch08: the file is not the book's
    with open(folder / "deep_convnet.py", "a") as edited:
        edited.write("# a reader's edit\n")
    planted = plant(folder / "deep_convnet_params.pkl", marker)
    status, out, err = book_run(folder / "loads_params.py", tmp_path)
    assert out.strip() == "deep_convnet"
    line = refused_in_one_line(status, err)
    assert f"refused to unpickle {planted} (pickle.load, deep_convnet.py line 130)" in line
    assert (f"train its safetensors equivalent with handgrad book-run --out {tmp_path / 'out'} ch08/train_deepnet.py "
            f"(it writes {tmp_path / 'out' / 'deep_convnet_params.safetensors'}") in line
    assert not marker.exists()


@needs_book
def test_stand_ins_follow_the_imported_file_not_the_folders_name(tmp_path, capsys):
    """ch04's own, different two_layer_net.py stays the book's, in any folder; ch05's (and a copy
    with Windows line ends) is handgrad's in any folder, and so is a name with no file at all."""
    report = "import two_layer_net\nprint(two_layer_net.__name__, getattr(two_layer_net, '__file__', ''))\n"
    cases = {
        "ch05": (BOOK / "ch04" / "two_layer_net.py", "two_layer_net"),
        "copy_of_ch05": (BOOK / "ch05" / "two_layer_net.py", "handgrad.book.two_layer_net"),
        "crlf": (None, "handgrad.book.two_layer_net"),
        "no_file": (False, "handgrad.book.two_layer_net"),
    }
    for folder, (source, expected) in cases.items():
        (tmp_path / folder).mkdir()
        if source:
            shutil.copy(source, tmp_path / folder / "two_layer_net.py")
        elif source is None:
            crlf = (BOOK / "ch05" / "two_layer_net.py").read_bytes().replace(b"\n", b"\r\n")
            (tmp_path / folder / "two_layer_net.py").write_bytes(crlf)
        (tmp_path / folder / "which.py").write_text(report)
        assert run_script(tmp_path / folder / "which.py", out=tmp_path / "out") == 0
        name, _, filename = capsys.readouterr().out.strip().partition(" ")
        assert name == expected, folder
        if expected == "two_layer_net":
            assert filename == str(tmp_path / folder / "two_layer_net.py")
        assert "two_layer_net" not in sys.modules  # forgotten: the next folder decides afresh


@needs_book
def test_book_file_digests_are_the_books_files():
    for name, (chapter, _) in CHAPTER_MODULES.items():
        assert is_books_file(name, BOOK / chapter / f"{name}.py"), name
    assert set(BOOK_FILE_SHA256) == set(CHAPTER_MODULES)
    assert not is_books_file("two_layer_net", BOOK / "ch04" / "two_layer_net.py")


PICKLE_NAMES = [(pickle, name) for name in ("load", "loads", "Unpickler", "_load", "_loads", "_Unpickler")] + \
    [(_pickle, name) for name in ("load", "loads", "Unpickler")]


@pytest.mark.filterwarnings("ignore:inside the script")
@pytest.mark.parametrize("body, expected_status", [
    ("import warnings\nwarnings.warn('inside the script')\n", 0),
    ("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()\nraise RuntimeError('the script failed')\n", 1),
    ("import pickle\npickle.load(open('weights.pkl', 'rb'))\n", 1),
    ("import sys\nsys.exit(4)\n", 4),
], ids=["ends", "raises", "refused", "exits"])
def test_run_script_leaves_formatwarning_plt_show_and_pickle_as_they_were(tmp_path, capsys, body, expected_status):
    """Issue 21: book-run once left warnings.formatwarning and plt.show replaced after it returned,
    so every later warning in the process was formatted the book-run way."""
    import matplotlib.pyplot as plt

    marker = tmp_path / "marker"
    plant(tmp_path / "ch00" / "weights.pkl", marker)
    script = tmp_path / "ch00" / "script.py"
    script.write_text(body)
    before = {
        "formatwarning": warnings.formatwarning, "show": plt.show, "meta_path": list(sys.meta_path),
        "path": list(sys.path), "argv": list(sys.argv), "argv list": sys.argv, "cwd": Path.cwd(),
        "pickle": {(module.__name__, name): getattr(module, name) for module, name in PICKLE_NAMES},
        "chapter modules": {name: sys.modules.get(name) for name in CHAPTER_MODULES},
    }
    assert run_script(script, out=tmp_path / "out") == expected_status
    assert warnings.formatwarning is before["formatwarning"]
    assert plt.show is before["show"]
    assert sys.meta_path == before["meta_path"] and sys.path == before["path"]
    assert sys.argv is before["argv list"] and sys.argv == before["argv"]
    assert Path.cwd() == before["cwd"]
    for (module, name), original in before["pickle"].items():
        assert getattr(sys.modules[module], name) is original, (module, name)
    assert {name: sys.modules.get(name) for name in CHAPTER_MODULES} == before["chapter modules"]
    assert not marker.exists()
    # Afterwards pickle works again (the audit hook that stays does nothing outside a run) and a
    # warning is Python's own again.
    assert pickle.loads(pickle.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    assert not warnings.formatwarning("after", UserWarning, "f.py", 1).startswith("handgrad book-run")
    capsys.readouterr()


@pytest.mark.parametrize("name, hint", [
    ("sample_weight.pkl", "the book ships sample_weight.pkl only as a pickle, with no script that trains it"),
    ("params.pkl", "train its safetensors equivalent with handgrad book-run --out {out} ch07/train_convnet.py"),
    ("deep_convnet_params.pkl", "train its safetensors equivalent with handgrad book-run --out {out} ch08/train_deepnet.py"),
    ("my_own.pkl", None),
])
def test_the_refusal_of_a_weight_file_the_book_ships_says_how_to_get_its_safetensors_equivalent(tmp_path, capsys,
                                                                                                 name, hint):
    marker = tmp_path / "marker"
    planted = plant(tmp_path / "chapter" / name, marker)
    script = tmp_path / "chapter" / "reads.py"
    script.write_text(f"import pickle\nwith open({name!r}, 'rb') as f:\n    weights = pickle.load(f)\n")
    assert run_script(script, out=tmp_path / "out") == 1
    line = refused_in_one_line(1, capsys.readouterr().err)
    assert line.startswith(f"handgrad book-run: refused to unpickle {planted} (pickle.load, reads.py line 3): ")
    if hint is None:
        assert line.endswith("so book-run never unpickles")
    else:
        assert hint.format(out=tmp_path / "out") in line
    assert not marker.exists()


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_book_run_does_not_replace_a_fifo_where_a_figure_goes(tmp_path, capsys):
    """plt.show() under book-run renamed its PNG over whatever had the figure's name."""
    import os

    pytest.importorskip("matplotlib")
    script = tmp_path / "draw.py"
    script.write_text("import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()\n")
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "draw-1.png")
    assert run_script(script, out=out) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "draw-1.png" in err[0] and "FIFO" in err[0], err
    assert (out / "draw-1.png").is_fifo()
