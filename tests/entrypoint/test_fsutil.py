"""Atomic writes (dagfleet.fleet.fsutil): whole files or nothing, create-only by hard link, user files untouched."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from dagfleet.fleet.fsutil import (
    TEMP_PREFIX,
    FileTakenError,
    atomic_write,
    atomic_write_json,
    read_json,
    remove_stale_temp_files,
)


def test_create_only_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "acme-mydag.py"
    assert atomic_write(path, b"new", tmp_dir=tmp_path / "tmp", create_only=True)
    assert path.read_bytes() == b"new"
    with pytest.raises(FileTakenError):
        atomic_write(path, b"other", tmp_dir=tmp_path / "tmp", create_only=True)
    assert path.read_bytes() == b"new"
    dangling = tmp_path / "link-mydag.py"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileTakenError):
        atomic_write(dangling, b"x", tmp_dir=tmp_path / "tmp", create_only=True)
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()
    assert list((tmp_path / "tmp").iterdir()) == []  # no temp file left behind


def test_a_write_replaces_the_file_by_rename(tmp_path: Path) -> None:
    """A reader holding the old file keeps reading the old bytes: the name moves to a new inode."""
    path = tmp_path / "dags" / "acme-mydag.py"
    assert atomic_write(path, b"old")  # creates the missing folder too
    with path.open("rb") as reader:
        old_inode = os.fstat(reader.fileno()).st_ino
        assert atomic_write(path, b"new contents")
        assert reader.read() == b"old"
    assert path.read_bytes() == b"new contents"
    assert path.stat().st_ino != old_inode
    assert sorted(p.name for p in path.parent.iterdir()) == ["acme-mydag.py"]  # no temp file left


def test_an_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "acme-mydag.py"
    assert atomic_write(path, b"same")
    past = time.time_ns() - 3_600_000_000_000
    os.utime(path, ns=(past, past))
    inode = path.stat().st_ino
    assert atomic_write(path, b"same") is False
    assert path.stat().st_mtime_ns == past  # the DAG processor sees no change
    assert path.stat().st_ino == inode


def test_mode_is_group_writable_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        atomic_write(tmp_path / "a.py", b"x")
        atomic_write(tmp_path / "b.py", b"x", create_only=True)
        atomic_write(tmp_path / "c.json", b"x", mode=0o600)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.py").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "b.py").stat().st_mode) == 0o664
    assert stat.S_IMODE((tmp_path / "c.json").stat().st_mode) == 0o600


def test_the_temp_file_lives_in_tmp_dir_and_is_gone_afterwards(tmp_path: Path) -> None:
    target = tmp_path / "dags" / "acme-mydag.py"
    assert atomic_write(target, b"one", tmp_dir=tmp_path / "tmp")
    assert atomic_write(target, b"two", tmp_dir=tmp_path / "tmp")
    assert target.read_bytes() == b"two"
    assert list((tmp_path / "tmp").iterdir()) == []
    assert [p.name for p in target.parent.iterdir()] == ["acme-mydag.py"]


def test_a_failed_create_only_write_leaves_the_users_file_and_no_temp(tmp_path: Path) -> None:
    """The name is taken after the check: the hard link fails, the user's file stays byte for byte."""
    user_file = tmp_path / "acme-mydag.py"
    user_file.write_bytes(b"# the user's own DAG\n")
    hardlinked = tmp_path / "other-name.py"
    os.link(user_file, hardlinked)  # a hard link to the user's file is the user's file too
    for path in (user_file, hardlinked):
        with pytest.raises(FileTakenError, match=f"{path.name} exists and was not created by dagfleet"):
            atomic_write(path, b"generated", create_only=True)
    assert user_file.read_bytes() == b"# the user's own DAG\n"
    assert user_file.stat().st_nlink == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acme-mydag.py", "other-name.py"]


def test_a_plain_write_replaces_a_symlink_never_its_target(tmp_path: Path) -> None:
    target = tmp_path / "users-file.py"
    target.write_bytes(b"user")
    link = tmp_path / "acme-mydag.py"
    link.symlink_to(target)
    assert atomic_write(link, b"generated")
    assert not link.is_symlink()
    assert link.read_bytes() == b"generated"
    assert target.read_bytes() == b"user"


def test_json_round_trip_and_unreadable_json(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    assert atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=1, sort_keys=True) + "\n"
    assert atomic_write_json(path, {"a": [1, 2], "b": 1}) is False  # same content, key order aside
    assert read_json(path) == {"a": [1, 2], "b": 1}
    assert read_json(tmp_path / "missing.json", default={}) == {}
    (tmp_path / "broken.json").write_text("{not json")
    assert read_json(tmp_path / "broken.json", default="fallback") == "fallback"


def test_only_old_temp_files_are_removed(tmp_path: Path) -> None:
    old = tmp_path / f"{TEMP_PREFIX}old.tmp"
    fresh = tmp_path / f"{TEMP_PREFIX}fresh.tmp"
    users = tmp_path / "old-but-not-ours.tmp"
    for path in (old, fresh, users):
        path.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    os.utime(users, (hour_ago, hour_ago))
    remove_stale_temp_files(tmp_path, older_than=300)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, users.name])
