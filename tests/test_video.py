"""tools/infer_video.py and seglite.inference.video: sources, sizes, errors, interruption."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seglite.data import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from seglite.errors import ModelLoadError, SegliteError
from seglite.inference.predictor import Predictor
from seglite.inference.video import to_bgr
from seglite.models import build_model

HEIGHT, WIDTH = 61, 97  # odd on purpose
FPS = 12.0


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    torch.manual_seed(0)
    model = build_model("mobilenet_v3_small", "lraspp", num_classes=19, width_mult=0.5)
    return Predictor.from_model(model, CITYSCAPES_CLASSES, CITYSCAPES_PALETTE)


@pytest.fixture()
def tool(monkeypatch, predictor):
    """The video tool with its model loading replaced by the tiny in-memory predictor."""
    from seglite.apps import infer_video

    monkeypatch.setattr(infer_video, "load_predictor", lambda args: predictor)
    return infer_video


def frame(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A BGR frame with a moving bright square, so frames differ."""
    image = np.full((height, width, 3), (40, 90, 140), dtype=np.uint8)
    left = (index * 7) % max(1, width - 20)
    image[10:30, left : left + 20] = (250, 250, 250)
    return image


def write_video(path: Path, count: int, height: int = HEIGHT, width: int = WIDTH) -> Path:
    # OpenCV's own MJPEG writer keeps odd sizes (its FFmpeg writer would crop them)
    writer = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), FPS, (width, height))
    assert writer.isOpened()
    for index in range(count):
        writer.write(frame(index, height, width))
    writer.release()
    return path


def read_video(path: Path) -> tuple[int, tuple[int, int], float]:
    """(frame count, (height, width), fps) by decoding every frame."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} is not a readable video"
    count, shape = 0, None
    while True:
        ok, image = capture.read()
        if not ok:
            break
        count, shape = count + 1, image.shape[:2]
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return count, shape, fps


@pytest.fixture()
def odd_video(tmp_path) -> Path:
    return write_video(tmp_path / "input.avi", 7)


def run_tool(tool, *args: str) -> int:
    return tool.main([*map(str, args), "--checkpoint", "unused.ckpt", "--no-progress"])


def test_odd_sized_video_keeps_frames_size_and_fps(tool, odd_video, tmp_path, capsys):
    output = tmp_path / "out" / "overlay.avi"
    assert run_tool(tool, odd_video, output, "--batch", "3", "--masks", tmp_path / "masks") == 0
    assert read_video(output) == (7, (HEIGHT, WIDTH), FPS)
    masks = sorted((tmp_path / "masks").glob("*.png"))
    assert [path.name for path in masks] == [f"frame_{index:06d}.png" for index in range(7)]
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.uint8 and mask.max() < 19
    printed = capsys.readouterr().out
    assert "frames: 7" in printed and "model-only fps" in printed and "end-to-end fps" in printed


def test_mp4_pads_odd_sides_to_even(tool, odd_video, tmp_path):
    output = tmp_path / "overlay.mp4"
    assert run_tool(tool, odd_video, output, "--side-by-side", "--max-frames", "5") == 0
    # mp4v through OpenCV's FFmpeg writer needs even sides: one replicated row/column is added
    assert read_video(output) == (5, (HEIGHT + 1, 2 * WIDTH), FPS)


def test_overlay_matches_the_shared_visualization(predictor):
    from seglite.inference.video import VideoPipeline
    from seglite.visualization import overlay

    image = frame(0)
    mask = predictor.predict(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    palette_bgr = CITYSCAPES_PALETTE[:, ::-1]
    for opacity in (0.0, 0.3, 1.0):
        composed = VideoPipeline(predictor, opacity=opacity).compose(image, mask)
        expected = overlay(image, mask, palette_bgr, opacity)
        assert np.abs(composed.astype(int) - expected).max() <= (0 if opacity in (0.0, 1.0) else 1)
    side_by_side = VideoPipeline(predictor, side_by_side=True).compose(image, mask)
    assert side_by_side.shape == (HEIGHT, 2 * WIDTH, 3) and np.array_equal(side_by_side[:, :WIDTH], image)


def test_frames_folder_with_grey_bgra_and_16_bit_frames(tool, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_bgr.png"), frame(0))
    cv2.imwrite(str(folder / "b_grey.png"), cv2.cvtColor(frame(1), cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "c_bgra.png"), cv2.cvtColor(frame(2), cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "d_grey16.png"), cv2.cvtColor(frame(3), cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    (folder / "notes.txt").write_text("not a frame")
    output = tmp_path / "folder.avi"
    assert run_tool(tool, folder, output, "--masks", tmp_path / "masks", "--fps", "5") == 0
    assert read_video(output) == (4, (HEIGHT, WIDTH), 5.0)
    assert sorted(path.stem for path in (tmp_path / "masks").glob("*.png")) == ["a_bgr", "b_grey", "c_bgra", "d_grey16"]
    # a glob of frames works too
    assert run_tool(tool, str(folder / "*_grey*.png"), tmp_path / "glob.avi") == 0
    assert read_video(tmp_path / "glob.avi")[0] == 2


@pytest.mark.parametrize(
    "image",
    [
        np.full((5, 7), 200, np.uint8),
        np.full((5, 7, 1), 200, np.uint8),
        np.full((5, 7, 4), 200, np.uint8),
        np.full((5, 7), 200 * 257, np.uint16),
    ],
    ids=["grey", "grey-1-channel", "bgra", "grey-16-bit"],
)
def test_to_bgr(image):
    converted = to_bgr(image)
    assert converted.shape == (5, 7, 3) and converted.dtype == np.uint8
    assert (converted == 200).all()


def test_missing_input_and_unwritable_output_are_clear_errors(tool, odd_video, tmp_path, capsys):
    assert run_tool(tool, tmp_path / "missing.mp4", tmp_path / "out.mp4") == 2
    assert "input not found" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    assert run_tool(tool, broken, tmp_path / "out.mp4") == 2
    assert "broken.mp4" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert run_tool(tool, odd_video, blocker / "out.mp4") == 2
    assert "is a file" in capsys.readouterr().err
    assert run_tool(tool, odd_video, tmp_path / "out.gif") == 2
    assert "cannot write video" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tool, odd_video, tmp_path, capsys):
    output = tmp_path / "out.avi"
    output.write_bytes(b"precious")
    assert run_tool(tool, odd_video, output) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"precious"
    assert run_tool(tool, odd_video, output, "--overwrite") == 0
    assert read_video(output)[0] == 7


class FailingPredictor:
    """Delegates to a predictor and raises ``error`` on call number ``fail_at`` of predict_batch."""

    def __init__(self, predictor: Predictor, error: BaseException, fail_at: int) -> None:
        self.predictor, self.error, self.fail_at, self.calls = predictor, error, fail_at, 0
        self.palette, self.class_names, self.description = predictor.palette, predictor.class_names, predictor.description

    def predict_batch(self, images):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error
        return self.predictor.predict_batch(images)


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_interrupted_run_keeps_a_playable_partial_file(tool, predictor, odd_video, tmp_path, monkeypatch, capsys, suffix):
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, KeyboardInterrupt(), 3))
    output = tmp_path / f"interrupted{suffix}"
    assert run_tool(tool, odd_video, output, "--batch", "2") == 130
    assert not output.exists()  # nothing partial under the output's name
    assert read_video(tmp_path / f"interrupted.partial{suffix}")[0] == 4  # the two batches predicted before Ctrl-C
    assert f"infer_video: interrupted by Ctrl-C; the 4 frames done are kept in {tmp_path / f'interrupted.partial{suffix}'}; " \
           f"{output} was not written\n" in capsys.readouterr().err


def test_interruption_before_the_first_frame_leaves_no_empty_video(tool, predictor, odd_video, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, KeyboardInterrupt(), 1))
    output = tmp_path / "nothing.mp4"
    assert run_tool(tool, odd_video, output) == 130
    assert not output.exists()  # a video without frames opens nowhere
    assert "no frame was done" in capsys.readouterr().err


def test_failure_mid_run_keeps_a_playable_partial_file(tool, predictor, odd_video, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, RuntimeError("boom"), 2))
    output = tmp_path / "failed.mp4"
    with pytest.raises(RuntimeError, match="boom") as failure:
        run_tool(tool, odd_video, output)
    assert not output.exists() and read_video(tmp_path / "failed.partial.mp4")[0] == 1
    assert failure.value.__notes__ == [f"the 1 frames done are kept in {tmp_path / 'failed.partial.mp4'}; {output} was not written"]


def test_model_errors_are_reported_without_traceback(odd_video, tmp_path, capsys):
    from seglite.apps import infer_video as tool  # the real loader
    assert tool.main([str(odd_video), str(tmp_path / "out.mp4"), "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "none.ckpt" in capsys.readouterr().err
    with pytest.raises(SegliteError):
        tool.run(tool.parse_args([str(odd_video), str(odd_video), "--checkpoint", "x.ckpt"]))


class _ShortWriter:
    """A cv2.VideoWriter that stops storing frames after ``keep`` of them, as on a full disk.

    ``report`` says what ``write`` answers then: False as OpenCV 5's FFmpeg writer does, or
    True as its MJPEG writer does (which notices nothing).
    """

    def __init__(self, keep: int, report: bool, make, *args) -> None:
        self.inner = make(*args)
        self.keep, self.report, self.count = keep, report, 0

    def isOpened(self) -> bool:
        return self.inner.isOpened()

    def write(self, image):
        self.count += 1
        if self.count > self.keep:
            return self.report
        return self.inner.write(image)

    def release(self) -> None:
        self.inner.release()


@pytest.mark.parametrize("suffix, report", [(".mp4", False), (".avi", True)], ids=["encoder-reports", "silent-mjpeg"])
def test_full_disk_is_an_error_and_leaves_no_broken_video(tool, odd_video, tmp_path, monkeypatch, capsys, suffix, report):
    from seglite.inference.video import sink

    real = cv2.VideoWriter
    monkeypatch.setattr(sink.cv2, "VideoWriter", lambda *args: _ShortWriter(3, report, real, *args))
    output = tmp_path / f"full{suffix}"
    assert run_tool(tool, odd_video, output) == 2
    captured = capsys.readouterr()
    assert f"cannot write video {output}" in captured.err and "frames: 7" not in captured.out
    assert not output.exists()
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left


def test_output_that_is_the_input_by_a_hard_link_is_refused(tool, odd_video, tmp_path, capsys):
    output = tmp_path / "same.avi"
    os.link(odd_video, output)
    before = odd_video.read_bytes()
    assert run_tool(tool, odd_video, output, "--overwrite") == 2
    assert "is the input" in capsys.readouterr().err
    assert odd_video.read_bytes() == before


def test_never_writes_through_a_symbolic_link(tool, odd_video, tmp_path, capsys):
    target = tmp_path / "precious.avi"
    target.write_bytes(b"precious")
    link = tmp_path / "link.avi"
    link.symlink_to(target)
    assert run_tool(tool, odd_video, link, "--overwrite") == 2
    assert "symbolic link" in capsys.readouterr().err
    assert target.read_bytes() == b"precious" and link.is_symlink()


def test_masks_replace_only_seglite_masks_and_never_input_frames(tool, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(3):
        cv2.imwrite(str(frames / f"f{index}.png"), frame(index))
    before = (frames / "f0.png").read_bytes()
    # masks into the frames folder would replace the frames themselves
    assert run_tool(tool, frames, tmp_path / "a.avi", "--masks", frames, "--overwrite") == 2
    assert "input frame" in capsys.readouterr().err and (frames / "f0.png").read_bytes() == before
    masks = tmp_path / "masks"
    assert run_tool(tool, frames, tmp_path / "b.avi", "--masks", masks) == 0
    assert run_tool(tool, frames, tmp_path / "c.avi", "--masks", masks) == 2  # exists: --overwrite needed
    assert "--overwrite" in capsys.readouterr().err
    assert run_tool(tool, frames, tmp_path / "c.avi", "--masks", masks, "--overwrite") == 0
    (masks / "f1.png").unlink()
    (masks / "f1.png").write_bytes(b"a user's file")  # no longer seglite's: --overwrite leaves it
    (masks / ".seglite-outputs.json").write_text('{"files": ["f0.png", "f2.png"]}')
    assert run_tool(tool, frames, tmp_path / "d.avi", "--masks", masks, "--overwrite") == 2
    assert "not written by seglite" in capsys.readouterr().err
    assert (masks / "f1.png").read_bytes() == b"a user's file" and not (tmp_path / "d.avi").exists()


def listed_masks(folder: Path) -> list[str]:
    return json.loads((folder / ".seglite-outputs.json").read_text())["files"]


def test_masks_manifest_lists_the_masks_written_never_a_wildcard(tool, odd_video, tmp_path, capsys):
    masks = tmp_path / "masks"
    assert run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", masks, "--max-frames", "3") == 0
    assert listed_masks(masks) == [f"frame_{index:06d}.png" for index in range(3)]
    (masks / "frame_000005.png").write_bytes(b"a user's file")  # a mask's name, but not seglite's
    assert run_tool(tool, odd_video, tmp_path / "b.avi", "--masks", masks, "--overwrite") == 2
    message = capsys.readouterr().err
    assert "frame_000005.png" in message and "not written by seglite" in message
    assert (masks / "frame_000005.png").read_bytes() == b"a user's file" and not (tmp_path / "b.avi").exists()


def test_overwrite_with_fewer_frames_removes_the_earlier_runs_other_masks(tool, odd_video, tmp_path):
    masks = tmp_path / "masks"
    assert run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", masks, "--max-frames", "5") == 0
    (masks / "notes.png").write_bytes(b"a user's file")  # not listed in the manifest: never removed
    assert run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", masks, "--max-frames", "2", "--overwrite") == 0
    assert sorted(path.name for path in masks.iterdir()) == [
        ".seglite-outputs.json", "frame_000000.png", "frame_000001.png", "notes.png"
    ]
    assert listed_masks(masks) == ["frame_000000.png", "frame_000001.png"]
    assert (masks / "notes.png").read_bytes() == b"a user's file" and read_video(tmp_path / "a.avi")[0] == 2


def test_a_run_claims_only_the_masks_it_wrote(tool, predictor, odd_video, tmp_path, monkeypatch):
    # a failed start writes nothing: no masks folder (nor its parent) is left behind
    def unloadable(args):
        raise ModelLoadError("cannot load model broken.onnx")

    monkeypatch.setattr(tool, "load_predictor", unloadable)
    assert run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", tmp_path / "new" / "masks") == 2
    assert not (tmp_path / "new").exists() and not (tmp_path / "a.avi").exists()
    # nor does it remove or unlist an earlier run's masks, even with --overwrite
    monkeypatch.setattr(tool, "load_predictor", lambda args: predictor)
    masks = tmp_path / "masks"
    assert run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", masks, "--max-frames", "3") == 0
    monkeypatch.setattr(tool, "load_predictor", unloadable)
    assert run_tool(tool, odd_video, tmp_path / "b.avi", "--masks", masks, "--overwrite") == 2
    assert listed_masks(masks) == [f"frame_{index:06d}.png" for index in range(3)] == sorted(p.name for p in masks.glob("*.png"))
    # Ctrl-C after two batches of two: the masks written are dropped with the folder the run made
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, KeyboardInterrupt(), 3))
    other = tmp_path / "other"
    assert run_tool(tool, odd_video, tmp_path / "c.avi", "--masks", other, "--batch", "2") == 130
    assert not other.exists() and read_video(tmp_path / "c.partial.avi")[0] == 4


def test_empty_masks_path_is_refused(tool, odd_video, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_tool(tool, odd_video, tmp_path / "a.avi", "--masks", "")
    assert exit_info.value.code == 2 and "argument --masks: expected a folder path" in capsys.readouterr().err


def test_interrupt_during_start_up_is_a_clean_exit(tool, odd_video, tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tool, "load_predictor", interrupted)
    assert run_tool(tool, odd_video, tmp_path / "out.mp4") == 130
    captured = capsys.readouterr()
    assert "interrupted" in captured.err and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == [odd_video]


def test_video_gets_the_usual_permissions(tool, odd_video, tmp_path):
    previous = os.umask(0o022)
    try:
        assert run_tool(tool, odd_video, tmp_path / "out.avi") == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "out.avi").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("fps", ["inf", "nan", "1e-9", "1e9", "0", "-5", "fast"])
def test_a_frame_rate_that_no_writer_takes_is_an_argument_error_naming_fps(tool, odd_video, tmp_path, capsys, fps):
    # `--fps inf` used to hang inside OpenCV's writer, where Ctrl-C could not stop it
    with pytest.raises(SystemExit) as stop:
        tool.parse_args([str(odd_video), str(tmp_path / "out.mp4"), "--checkpoint", "x.ckpt", "--fps", fps])
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"argument --fps: expected frames per second from 0.1 to 1000, got '{fps}'")
    assert not (tmp_path / "out.mp4").exists()
    assert tool.parse_args([str(odd_video), str(tmp_path / "out.mp4"), "--checkpoint", "x.ckpt", "--fps", "0.5"]).fps == 0.5


# ----------------------------------------------------------------------------- replaced only on success
def frames_folder(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        cv2.imwrite(str(folder / f"f{index}.png"), frame(index))
    return folder


def snapshot(*paths: Path) -> dict[str, bytes]:
    """Every file under ``paths`` (files or folders, hidden ones included) with its bytes."""
    found = {}
    for path in paths:
        for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
            found[str(file)] = file.read_bytes()
    return found


def hidden_files(*folders: Path) -> list[str]:
    return sorted(str(path) for folder in folders for path in folder.rglob(".*") if path.name != ".seglite-outputs.json")


def test_a_failed_overwrite_leaves_the_previous_video_and_masks_as_they_were(tool, tmp_path, capsys):
    frames = frames_folder(tmp_path / "frames", 6)
    output, masks = tmp_path / "out.avi", tmp_path / "masks"
    assert run_tool(tool, frames, output, "--masks", masks) == 0
    before = snapshot(output, masks)
    (frames / "f3.png").write_bytes(b"not a png")  # the new run fails on its fourth frame
    assert run_tool(tool, frames, output, "--masks", masks, "--overwrite") == 2
    error = capsys.readouterr().err
    assert "f3.png" in error and "out.partial.avi" in error
    assert snapshot(output, masks) == before  # the video, all six masks and their manifest
    assert read_video(tmp_path / "out.partial.avi")[0] == 3  # the frames done, clearly named
    assert hidden_files(tmp_path) == []


def test_a_failed_run_leaves_nothing_under_the_outputs_name(tool, tmp_path, capsys):
    frames = frames_folder(tmp_path / "frames", 4)
    (frames / "f2.png").write_bytes(b"")
    output, masks = tmp_path / "new" / "out.mp4", tmp_path / "masks"
    assert run_tool(tool, frames, output, "--masks", masks) == 2
    assert not output.exists() and not masks.exists()  # the masks folder it made is gone with its masks
    assert read_video(tmp_path / "new" / "out.partial.mp4")[0] == 2
    assert hidden_files(tmp_path) == []


def test_ctrl_c_with_overwrite_keeps_the_previous_video_and_masks(tool, predictor, odd_video, tmp_path, monkeypatch, capsys):
    output, masks = tmp_path / "out.mp4", tmp_path / "masks"
    assert run_tool(tool, odd_video, output, "--masks", masks) == 0
    before = snapshot(output, masks)
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, KeyboardInterrupt(), 3))
    assert run_tool(tool, odd_video, output, "--masks", masks, "--batch", "2", "--overwrite") == 130
    captured = capsys.readouterr()
    assert snapshot(output, masks) == before
    assert read_video(tmp_path / "out.partial.mp4")[0] == 4
    assert f"the 4 frames done are kept in {tmp_path / 'out.partial.mp4'}" in captured.err
    assert f"{output} is as it was" in captured.err
    assert hidden_files(tmp_path) == []


def test_sigterm_stops_like_ctrl_c_and_leaves_no_hidden_file(tool, predictor, odd_video, tmp_path, monkeypatch, capsys):
    import signal

    class Terminating(FailingPredictor):
        def predict_batch(self, images):
            if self.calls == 2:
                os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler or `kill` sends it
            return super().predict_batch(images)

    output, masks = tmp_path / "out.avi", tmp_path / "masks"
    assert run_tool(tool, odd_video, output, "--masks", masks) == 0
    before = snapshot(output, masks)
    monkeypatch.setattr(tool, "load_predictor", lambda args: Terminating(predictor, RuntimeError("unused"), 0))
    handler = signal.getsignal(signal.SIGTERM)
    assert run_tool(tool, odd_video, output, "--masks", masks, "--overwrite") == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is handler  # the tool's handler is gone
    assert "SIGTERM" in capsys.readouterr().err
    assert snapshot(output, masks) == before
    assert hidden_files(tmp_path) == []
    assert read_video(tmp_path / "out.partial.avi")[0] == 2


def test_an_earlier_partial_file_is_replaced_only_with_overwrite(tool, predictor, odd_video, tmp_path, monkeypatch, capsys):
    partial = tmp_path / "out.partial.avi"
    partial.write_bytes(b"a user's file")
    monkeypatch.setattr(tool, "load_predictor", lambda args: FailingPredictor(predictor, KeyboardInterrupt(), 2))
    assert run_tool(tool, odd_video, tmp_path / "out.avi") == 130
    assert partial.read_bytes() == b"a user's file" and "discarded" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input.avi", "out.partial.avi"]


def test_a_truncated_video_reports_the_frames_its_header_announced(tool, tmp_path, capsys):
    complete = write_video(tmp_path / "complete.avi", 40)
    data = complete.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])  # a download or copy cut off: the index at the end is lost
    decoded = read_video(truncated)[0]
    assert 0 < decoded < 40 and cv2.VideoCapture(str(truncated)).get(cv2.CAP_PROP_FRAME_COUNT) == 40
    assert run_tool(tool, truncated, tmp_path / "out.avi") == 0
    captured = capsys.readouterr()
    assert f"frames: {decoded}\n" in captured.out
    notes = [line for line in captured.err.splitlines() if line.startswith("infer_video:")]
    assert notes == [f"infer_video: warning: video {truncated} ended after {decoded} of the 40 frames its header announces "
                     f"(truncated or damaged?); the output holds those {decoded}"]
    # --max-frames below the count is no shortfall
    assert run_tool(tool, truncated, tmp_path / "short.avi", "--max-frames", "5") == 0
    assert "warning" not in capsys.readouterr().err


def test_the_output_is_checked_before_the_model_loads(tool, odd_video, tmp_path, monkeypatch, capsys):
    loaded = []
    monkeypatch.setattr(tool, "load_predictor", lambda args: loaded.append(args))
    existing = tmp_path / "out.mp4"
    existing.write_bytes(b"precious")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    for output in (existing, blocker / "out.mp4", tmp_path / "out.gif"):
        assert run_tool(tool, odd_video, output) == 2
        assert capsys.readouterr().err.startswith("infer_video: error:")
    assert loaded == [] and existing.read_bytes() == b"precious"


def test_folders_made_for_a_writer_that_fails_to_open_are_removed(tool, odd_video, tmp_path, monkeypatch, capsys):
    from seglite.inference.video import sink

    class Unopened:
        def __init__(self, *args) -> None:
            pass

        def isOpened(self) -> bool:
            return False

        def release(self) -> None:
            pass

    monkeypatch.setattr(sink.cv2, "VideoWriter", Unopened)
    output = tmp_path / "new" / "deeper" / "out.mp4"
    assert run_tool(tool, odd_video, output, "--masks", tmp_path / "new" / "masks") == 2
    assert "did not open it" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["input.avi"]


def test_ctrl_c_while_the_outputs_move_in_waits_until_both_have(tool, odd_video, tmp_path, monkeypatch, capsys):
    import signal

    from seglite.inference.video import MaskFolder

    real = MaskFolder.commit

    def commit_then_ctrl_c(self) -> None:
        signal.raise_signal(signal.SIGINT)  # arrives between the masks and the video
        real(self)

    monkeypatch.setattr(MaskFolder, "commit", commit_then_ctrl_c)
    output, masks = tmp_path / "out.avi", tmp_path / "masks"
    assert run_tool(tool, odd_video, output, "--masks", masks) == 130
    assert f"infer_video: interrupted by Ctrl-C; the run had finished: {output} is written" in capsys.readouterr().err
    assert read_video(output)[0] == 7 and len(listed_masks(masks)) == 7 and hidden_files(tmp_path) == []
