"""Where handgrad writes: only regular files are replaced (never a device, a FIFO, a socket or a
folder), a symbolic link is written through to its target and kept, and the temporary file of a
writer killed mid-write is removed by a later run (security review, issue 22, items 2 and 14)."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg
from handgrad import serialize
from handgrad.serialize import (
    SerializationError,
    atomic_write_bytes,
    check_writable_target,
    remove_stale_temporaries,
)

needs_posix = pytest.mark.skipif(os.name != "posix", reason="FIFOs, device nodes and kill -9 are POSIX")


@pytest.fixture
def model():
    return hg.mlp(4, [3], 2, seed=0)


def refused_in_one_line(write, path, *fragments):
    with pytest.raises(SerializationError) as info:
        write()
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in message, message
    return message


def temporaries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp" in p.name)


# --- what may be replaced ---------------------------------------------------------------------------


@needs_posix
def test_saving_onto_a_fifo_is_refused_instead_of_replacing_it(model, tmp_path):
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    refused_in_one_line(lambda: hg.save(model, fifo), fifo, "is a FIFO (named pipe), not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert temporaries(tmp_path) == []


@needs_posix
def test_saving_onto_a_character_device_like_dev_full_is_refused(model, tmp_path):
    """`handgrad export MODEL --onnx /dev/full` run as root replaced the device with a regular
    file. A device node of the same kind (1, 7 = /dev/full) made inside tmp_path stands in for it,
    so that a regression can only ever replace this copy."""
    device = tmp_path / "full"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except (PermissionError, OSError) as error:
        pytest.skip(f"cannot create a device node here ({error}); needs root")
    for write in (lambda: hg.save(model, device), lambda: atomic_write_bytes(device, [b"x"])):
        refused_in_one_line(write, device, "is a character device, not a regular file")
    assert stat.S_ISCHR(os.lstat(device).st_mode) and os.lstat(device).st_rdev == os.makedev(1, 7)
    assert temporaries(tmp_path) == []


@needs_posix
def test_saving_onto_a_socket_is_refused(model, tmp_path):
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
    except OSError as error:  # a tmp_path too long for a socket's address
        pytest.skip(f"cannot bind a socket at {path}: {error}")
    try:
        refused_in_one_line(lambda: hg.save(model, path), path, "is a socket, not a regular file")
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
    finally:
        server.close()


@needs_posix
def test_a_symlink_is_written_through_to_its_target_and_kept(model, tmp_path):
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "model.safetensors"
    target.write_bytes(b"an older model")
    link = tmp_path / "latest.safetensors"
    link.symlink_to(Path("runs") / "model.safetensors")  # relative, as users make them
    hg.save(model, link)
    assert link.is_symlink() and os.readlink(link) == str(Path("runs") / "model.safetensors")
    np.testing.assert_array_equal(hg.load(target).params["0.W"], model.params["0.W"])
    assert temporaries(tmp_path) == [] and temporaries(tmp_path / "runs") == []
    assert check_writable_target(link) == target.resolve()


@needs_posix
def test_a_dangling_symlink_creates_its_target(model, tmp_path):
    link = tmp_path / "m.safetensors"
    link.symlink_to(tmp_path / "real.safetensors")
    hg.save(model, link)
    assert link.is_symlink() and (tmp_path / "real.safetensors").is_file()
    assert hg.load(link).spec() == model.spec()


@needs_posix
def test_a_symlink_to_a_fifo_a_folder_or_itself_is_refused(model, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    cases = {"to_fifo": ("fifo", "is a link to", "a FIFO (named pipe), not a regular file"),
             "to_folder": ("folder", "is a link to", "a directory; give the name of a file to write"),
             "loop": ("loop", "is a symbolic link that loops")}
    for name, (points_to, *fragments) in cases.items():
        (tmp_path / name).symlink_to(tmp_path / points_to)
        refused_in_one_line(lambda path=tmp_path / name: hg.save(model, path), tmp_path / name, *fragments)
        assert (tmp_path / name).is_symlink()
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode) and list((tmp_path / "folder").iterdir()) == []
    assert temporaries(tmp_path) == []


def test_check_writable_target_names_the_file_to_replace(tmp_path):
    assert check_writable_target(tmp_path / "new.png") == tmp_path / "new.png"
    (tmp_path / "old.png").write_bytes(b"x")
    assert check_writable_target(tmp_path / "old.png") == tmp_path / "old.png"
    refused_in_one_line(lambda: check_writable_target(tmp_path), tmp_path, "is a directory")
    assert "check_writable_target" in serialize.__all__


@needs_posix
def test_export_onto_a_fifo_is_refused_in_one_line(tmp_path, capsys):
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    from handgrad.cli import main

    hg.save(hg.mlp(4, [3], 2, seed=0), tmp_path / "m.safetensors")
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(fifo), "--force"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{fifo}: is a FIFO (named pipe), not a regular file" in lines[0], lines
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --- temporary files --------------------------------------------------------------------------------

_KILLED_WRITER = """
import sys, time
from handgrad.serialize import atomic_write_bytes

def chunks():
    yield b"x" * 1_000_000
    print("writing", flush=True)
    time.sleep(60)  # killed here, mid-write
    yield b"never"

atomic_write_bytes(sys.argv[1], chunks())
"""


@needs_posix
def test_a_temporary_left_by_a_writer_killed_mid_write_is_removed_by_the_next_save(model, tmp_path):
    """A kill -9 during a GPT checkpoint's write left an 85 MB temporary file that no later run
    removed."""
    target = tmp_path / "checkpoint.safetensors"
    writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
        writer.stdout.close()
    (left,) = temporaries(tmp_path)
    assert left.startswith(".checkpoint.safetensors.tmp-") and f"-{writer.pid}-" in left
    assert (tmp_path / left).stat().st_size == 1_000_000 and not target.exists()
    hg.save(model, target)
    assert temporaries(tmp_path) == [] and hg.load(target).spec() == model.spec()


@needs_posix
def test_remove_stale_temporaries_removes_only_dead_writers_files_of_this_machine(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True)
    dead = int(finished.stdout)
    for _ in range(100):  # the pid could be reused at once; wait until nothing runs under it
        try:
            os.kill(dead, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    host = serialize._host_tag()
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    names = {"dead": f".m.safetensors.tmp-{host}-{dead}-0123abcd",
             "dead_other_target": f".plot.png.tmp-{host}-{dead}-89abcdef",
             "alive": f".m.safetensors.tmp-{host}-{os.getpid()}-0123abcd",
             "other_machine": f".m.safetensors.tmp-{other_host}-{dead}-0123abcd",
             "not_ours": ".m.safetensors.tmp", "user_file": "m.safetensors"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path, "m.safetensors") == [tmp_path / names["dead"]]
    assert remove_stale_temporaries(tmp_path) == [tmp_path / names["dead_other_target"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        names[k] for k in ("alive", "other_machine", "not_ours", "user_file"))
    assert remove_stale_temporaries(tmp_path / "no such folder") == []


def test_temporaries_are_named_after_their_target_and_writer(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(source, destination):
        seen.append(Path(source).name)
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", spy)
    atomic_write_bytes(tmp_path / "h.json", [b"{}"])
    (name,) = seen
    match = serialize._TEMP_NAME.fullmatch(name)
    assert match and match["target"] == "h.json" and int(match["pid"]) == os.getpid()
    assert match["host"] == serialize._host_tag()
