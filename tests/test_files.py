"""modeling_eva02at.utils.files: atomic writes (never half-written, ordinary permissions) and JSON output."""

import json
import os
import stat

import pytest

from modeling_eva02at.utils.files import atomic_path, give_default_permissions, write_json


@pytest.fixture
def umask_027():
    """A umask other than the usual 022, so that a mode that merely happens to be 0644 cannot pass."""
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_get_the_permissions_of_an_ordinary_write(tmp_path, umask_027):
    with open(tmp_path / "plain.txt", "w") as handle:
        handle.write("x")
    with atomic_path(str(tmp_path / "atomic.txt")) as temporary, open(temporary, "w") as handle:
        handle.write("x")
    write_json(str(tmp_path / "atomic.json"), {"a": 1})
    assert mode(tmp_path / "plain.txt") == 0o640
    assert mode(tmp_path / "atomic.txt") == 0o640  # not tempfile's 0600
    assert mode(tmp_path / "atomic.json") == 0o640


def test_a_failed_atomic_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "results.json"
    write_json(str(target), {"version": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as temporary, open(temporary, "w") as handle:
            handle.write('{"version": ')  # half-written
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(os.listdir(tmp_path)) == ["results.json"]


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    write_json(
        str(tmp_path / "m.json"), {"map": float("nan"), "rows": [1.0, float("inf")], "nested": {"x": -float("inf")}}
    )
    assert json.loads((tmp_path / "m.json").read_text()) == {"map": None, "rows": [1.0, None], "nested": {"x": None}}


def test_default_permissions_of_a_temporary_folder(tmp_path, umask_027):
    import tempfile

    folder = tempfile.mkdtemp(dir=tmp_path)
    assert mode(folder) == 0o700
    give_default_permissions(folder)
    assert mode(folder) == 0o750
