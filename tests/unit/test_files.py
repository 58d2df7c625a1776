"""pycni.files helpers the tool side shares with the state writers: the
atomic write with a caller's temporary name, reading an fd that stays
open, and the kind of an entry named in refusals."""

import os
import stat

import pytest

from pycni import files


@pytest.fixture
def dir_fd(tmp_path):
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_write_atomic_at_with_a_named_temporary(tmp_path, dir_fd):
    (tmp_path / "victim").write_text("keep")
    os.symlink(tmp_path / "victim", tmp_path / "f")
    files.write_atomic_at(dir_fd, "f", b"new", 0o755, sync=True, tmp=".t-f.tmp")
    assert (tmp_path / "f").read_bytes() == b"new"
    assert not (tmp_path / "f").is_symlink()
    assert stat.S_IMODE(os.lstat(tmp_path / "f").st_mode) == 0o755
    assert (tmp_path / "victim").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["f", "victim"]


def test_a_named_temporary_that_exists_is_not_replaced(tmp_path, dir_fd):
    (tmp_path / ".t-f.tmp").write_text("someone's")
    with pytest.raises(FileExistsError):
        files.write_atomic_at(dir_fd, "f", b"new", tmp=".t-f.tmp")
    assert (tmp_path / ".t-f.tmp").read_text() == "someone's"
    assert not (tmp_path / "f").exists()


def test_the_default_temporary_left_by_a_killed_writer_is_replaced(tmp_path, dir_fd):
    stale = tmp_path / f".f.tmp{os.getpid()}"
    stale.write_text("half")
    files.write_atomic_at(dir_fd, "f", b"whole", 0o600)
    assert (tmp_path / "f").read_bytes() == b"whole"
    assert sorted(os.listdir(tmp_path)) == ["f"]
    assert stat.S_IMODE(os.lstat(tmp_path / "f").st_mode) == 0o600


def test_a_failed_write_leaves_no_temporary(tmp_path, dir_fd):
    os.mkdir(tmp_path / "d")
    (tmp_path / "d" / "x").write_text("")       # a non-empty directory: rename fails
    with pytest.raises(OSError):
        files.write_atomic_at(dir_fd, "d", b"x", tmp=".t-d.tmp")
    assert sorted(os.listdir(tmp_path)) == ["d"]


def test_read_fd_closes_unless_told_not_to(tmp_path):
    (tmp_path / "f").write_bytes(b"0123456789" * 10000)
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    assert files.read_fd(fd, 5, close=False) == b"01234"
    assert files.read_fd(fd, 1 << 20, close=False) == (b"0123456789" * 10000)[5:]
    os.fstat(fd)                                 # still open
    os.lseek(fd, 0, os.SEEK_SET)
    assert len(files.read_fd(fd, 1 << 20)) == 100000
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize("mode, kind", [(stat.S_IFDIR | 0o755, "a directory"),
                                        (stat.S_IFLNK | 0o777, "a symbolic link"),
                                        (stat.S_IFIFO | 0o600, "a FIFO"),
                                        (stat.S_IFSOCK | 0o755, "a socket"),
                                        (stat.S_IFREG | 0o644, "a regular file"),
                                        (stat.S_IFCHR | 0o666, "a device"),
                                        (stat.S_IFBLK | 0o660, "a device")])
def test_kind_names_each_file_type(mode, kind):
    assert files._kind(mode) == kind
