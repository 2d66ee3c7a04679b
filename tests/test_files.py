"""seglite.files (the output policy every tool shares) and seglite.checks (argument checks)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest

from seglite import checks, files
from seglite.errors import OutputExistsError, SegliteError


def test_atomic_write_replaces_whole_files_with_the_usual_permissions(tmp_path):
    target = tmp_path / "model.onnx"
    previous = os.umask(0o027)
    try:
        files.write_bytes(target, b"first")
        files.write_bytes(target, b"second")
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"second"
    assert target.stat().st_mode & 0o777 == 0o640  # the umask's permissions, not mkstemp's 0600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]


@pytest.mark.parametrize(
    "code, reason",
    [(errno.ENOSPC, "disk full"), (errno.EROFS, "read-only file system"), (errno.EACCES, "permission denied")],
)
def test_a_failed_write_keeps_the_old_file_and_names_file_and_reason(tmp_path, code, reason):
    target = tmp_path / "results.json"
    target.write_text("good old results")

    def failing(temporary: Path) -> None:
        temporary.write_bytes(b"half of the new")
        raise OSError(code, os.strerror(code))

    with pytest.raises(files.OutputWriteError) as raised:
        files.atomic_write(target, failing)
    assert str(target) in str(raised.value) and reason in str(raised.value)
    assert isinstance(raised.value, SegliteError) and raised.value.errno == code
    assert target.read_text() == "good old results"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]  # no temporary left


def test_an_interrupted_write_leaves_nothing_behind(tmp_path):
    def interrupted(temporary: Path) -> None:
        temporary.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(tmp_path / "out.png", interrupted)
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_is_reported(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        with pytest.raises(files.OutputWriteError, match="permission denied"):
            files.write_text(folder / "x.txt", "x")
        with pytest.raises(files.OutputWriteError, match="read_only"):
            files.make_dir(folder)
    finally:
        folder.chmod(0o755)


def test_links_and_inputs_are_never_written(tmp_path):
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"precious")
    link = tmp_path / "link.png"
    link.symlink_to(precious)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        files.check_output_file(link, overwrite=True)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        files.write_bytes(link, b"new")
    hard = tmp_path / "hard.png"
    os.link(precious, hard)
    with pytest.raises(OutputExistsError, match="is the input"):
        files.check_output_file(hard, overwrite=True, inputs=[precious])
    assert precious.read_bytes() == b"precious"
    with pytest.raises(OutputExistsError, match="--overwrite"):
        files.check_output_file(precious)
    assert files.check_output_file(tmp_path / "new" / "deeper" / "out.png") == tmp_path / "new" / "deeper" / "out.png"
    assert (tmp_path / "new" / "deeper").is_dir()


def test_manifest_lets_overwrite_replace_only_seglite_outputs(tmp_path):
    folder = tmp_path / "out"
    manifest = files.OutputManifest(folder)
    ours, theirs = folder / "a_mask.png", folder / "b_mask.png"
    folder.mkdir()
    ours.write_bytes(b"ours")
    manifest.claim([ours])  # claimed once written
    theirs.write_bytes(b"theirs")
    reread = files.OutputManifest(folder)  # the record survives the process
    assert reread.owns(ours) and not reread.owns(theirs)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        reread.check([ours], overwrite=False)
    reread.check([ours], overwrite=True)
    with pytest.raises(OutputExistsError, match="not written by seglite"):
        reread.check([ours, theirs], overwrite=True)
    assert reread.foreign("*_mask.png") == [theirs]
    with pytest.raises(OutputExistsError):
        reread.remove(theirs)
    reread.remove(ours)
    assert not ours.exists() and theirs.read_bytes() == b"theirs"
    # a removed output leaves the manifest: a user's file later put under its name is not seglite's
    ours.write_bytes(b"a user's file now")
    assert not files.OutputManifest(folder).owns(ours)


def test_manifest_lists_files_only_never_patterns(tmp_path):
    """A wildcard of an older manifest (infer_video claimed frame_*.png) does not make a user's file seglite's."""
    folder = tmp_path / "masks"
    folder.mkdir()
    (folder / "frame_000000.png").write_bytes(b"seglite's")
    (folder / "frame_000005.png").write_bytes(b"a user's file")
    (folder / files.MANIFEST_NAME).write_text('{"files": ["frame_000000.png"], "patterns": ["frame_*.png"]}')
    manifest = files.OutputManifest(folder)
    assert manifest.owns(folder / "frame_000000.png") and not manifest.owns(folder / "frame_000005.png")
    with pytest.raises(OutputExistsError, match="frame_000005.png exist but were not written by seglite"):
        manifest.check(sorted(folder.glob("frame_*.png")), overwrite=True)
    manifest.claim([folder / "frame_000001.png"])  # a rewritten manifest drops the wildcard
    assert json.loads((folder / files.MANIFEST_NAME).read_text()) == {"files": ["frame_000000.png", "frame_000001.png"]}


def test_manifest_save_at_most_every(tmp_path):
    manifest = files.OutputManifest(tmp_path)
    manifest.record([tmp_path / "a.png"])
    assert not (tmp_path / files.MANIFEST_NAME).exists()  # recorded, not yet saved
    manifest.save(durable=False, at_most_every=60.0)  # the first save is never held back
    manifest.record([tmp_path / "b.png"])
    manifest.save(durable=False, at_most_every=60.0)  # held back: saved a moment ago
    assert not files.OutputManifest(tmp_path).owns(tmp_path / "b.png")
    manifest.save()
    assert files.OutputManifest(tmp_path).owns(tmp_path / "b.png")


def test_missing_folders_are_removed_only_while_empty(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    created = files.missing_folders(target)
    assert created == [target, tmp_path / "a" / "b", tmp_path / "a"]
    files.make_dir(target)
    files.remove_empty_folders(created)
    assert not (tmp_path / "a").exists() and tmp_path.is_dir()
    files.make_dir(target)
    (tmp_path / "a" / "b" / "keep.txt").write_text("something")
    files.remove_empty_folders(created)
    assert not target.exists() and (tmp_path / "a" / "b" / "keep.txt").is_file()
    assert files.missing_folders(tmp_path) == [] and files.missing_folders("new") == [Path("new")]


def test_manifest_refuses_paths_through_a_linked_folder(tmp_path):
    folder, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    (folder / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputExistsError, match="symbolic link"):
        files.OutputManifest(folder).claim([folder / "sub" / "x.png"])


def test_staged_outputs_move_in_on_commit_and_leave_the_folder_as_it_was_otherwise(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "old.json").write_text("old")
    (folder / "stale.png").write_text("an earlier, longer run's")
    (folder / "notes.txt").write_text("the user's")
    files.OutputManifest(folder).claim([folder / "old.json", folder / "stale.png"])
    before = {path.name: path.read_bytes() for path in folder.iterdir()}

    dropped = files.StagedOutputs(folder)
    (dropped.path / "old.json").write_text("new, but the run failed")
    assert dropped.discard() == [Path("old.json")]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before

    staged = files.StagedOutputs(folder)
    (staged.path / "sub").mkdir()
    (staged.path / "old.json").write_text("new")
    (staged.path / "sub" / "a.png").write_text("new")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        staged.commit(overwrite=False)  # refused as at the start: nothing moves
    assert {path.name: path.read_bytes() for path in folder.iterdir() if path != staged.path} == before
    assert staged.commit(overwrite=True, stale=[folder / "stale.png", folder / "notes.txt"]) == [
        folder / "old.json", folder / "sub" / "a.png"
    ]
    assert sorted(path.name for path in folder.iterdir()) == [".seglite-outputs.json", "notes.txt", "old.json", "sub"]
    assert (folder / "old.json").read_text() == "new" and (folder / "notes.txt").read_text() == "the user's"
    assert json.loads((folder / ".seglite-outputs.json").read_text())["files"] == ["old.json", "sub/a.png"]


def test_a_file_that_appears_during_the_run_is_not_replaced(tmp_path):
    staged = files.StagedOutputs(tmp_path / "out")
    (staged.path / "a.png").write_text("new")
    (tmp_path / "out" / "a.png").write_text("the user's, made meanwhile")
    with pytest.raises(OutputExistsError, match="not written by seglite"):
        staged.commit(overwrite=True)
    assert (tmp_path / "out" / "a.png").read_text() == "the user's, made meanwhile"


def test_signals_are_delivered_after_the_deferred_block():
    import signal

    caught = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: caught.append(number))
    try:
        with files.signals_deferred():
            signal.raise_signal(signal.SIGTERM)
            assert caught == []  # held while the outputs move
        assert caught == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_write_image_encodes_by_extension(tmp_path):
    import cv2

    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    files.write_image(tmp_path / "mask.png", image)
    assert np.array_equal(cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_UNCHANGED), image)
    with pytest.raises(files.OutputWriteError, match="cannot encode"):
        files.write_image(tmp_path / "mask.unknown", image)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "3", None])
def test_positive_int_check_names_owner_and_argument(value):
    with pytest.raises(ValueError, match=r"^Head: channels must be a positive integer"):
        checks.check_positive_int("channels", value, owner="Head")


def test_checks_accept_what_they_should():
    assert checks.check_positive_int("n", np.int64(3)) == 3
    assert checks.check_positive_number("width_mult", 0.75) == 0.75
    assert checks.check_fraction("dropout", 0.0, include_one=False) == 0.0
    assert checks.check_choice("output_stride", 16, (8, 16, 32)) == 16
    assert checks.check_size("size", [64, 128]) == (64, 128)
    assert checks.check_size("size", None, allow_none=True) is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: checks.check_positive_number("width_mult", True),
        lambda: checks.check_fraction("dropout", 1.0, include_one=False),
        lambda: checks.check_choice("output_stride", True, (1, 8, 16)),
        lambda: checks.check_choice("mode", ["whole"], ("whole", "slide")),
        lambda: checks.check_size("size", (64, 0)),
        lambda: checks.check_size("size", None),
    ],
)
def test_checks_refuse_what_they_should(call):
    with pytest.raises(ValueError):
        call()


def test_check_image():
    image = np.zeros((4, 5, 3), np.uint8)
    assert checks.check_image(image) is image
    with pytest.raises(TypeError, match="frame"):
        checks.check_image([[0]], "frame")
    with pytest.raises(ValueError, match="uint8"):
        checks.check_image(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        checks.check_image(image[..., :2])
