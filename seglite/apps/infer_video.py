"""Segment a video file, a camera or a folder of frames into a colour-overlay video.

    python tools/infer_video.py data/demo/demo_street.mp4 out.mp4 --checkpoint last.ckpt
    python tools/infer_video.py data/demo/demo_street.mp4 out.mp4 --onnx model.onnx --size 512 1024 --batch 4
    python tools/infer_video.py data/demo/demo_street.mp4 out.mp4 --model model.pte    # a phone model (.pte, .tflite)
    python tools/infer_video.py "frames/*.png" out.avi --checkpoint last.ckpt --masks out_masks --side-by-side
    python tools/infer_video.py 0 camera.mp4 --checkpoint last.ckpt --max-frames 600
    python tools/infer_video.py in.mp4 out.mp4 --checkpoint last.ckpt --backend torch   # exact fp32 PyTorch

The model runs on the fastest backend of this machine whose accuracy is checked (--backend
auto: OpenVINO and ONNX Runtime timed on the model the first time it runs on a machine, the
choice kept and printed at the start; PyTorch where neither is installed).

Outputs .mp4/.m4v/.mov/.mkv are MPEG-4 ('mp4v'; frames with an odd side are padded by one
pixel, which that codec path needs); .avi is Motion JPEG at exactly the input size. The video
is written to a hidden temporary file and renamed to OUTPUT once the run has succeeded and the
file is checked to hold every frame (--masks likewise move in only then), so a full disk, a
failed run or an interrupted one leaves an earlier OUTPUT and masks as they were. Ctrl-C or
SIGTERM stops early and keeps the frames done, playable, in NAME.partial.EXT beside OUTPUT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seglite.apps import arguments, model_options
from seglite.errors import SegliteError

if TYPE_CHECKING:
    from seglite.inference.video import FrameSource  # imported when a run starts, after the arguments are parsed

DEFAULT_FPS = 30.0  # when neither --fps nor the input gives a frame rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infer_video.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("input", help="video file, camera index (0, 1, ...), folder of images, or a quoted glob such as 'frames/*.png'")
    parser.add_argument("output", type=Path, help="output video (.mp4, .m4v, .mov, .mkv or .avi)")
    model = model_options.add_model_arguments(parser, "frame")
    model.add_argument("--channels-last", action="store_true", help="channels-last memory format (torch backend; faster on CPU)")
    model.add_argument("--threads", type=arguments.positive_int,
                       help="CPU threads of the model (default on CPU: every core for OpenVINO and ONNX "
                       "Runtime; one per core but one for PyTorch, which stalls when decoding needs a core)")
    output = parser.add_argument_group("output")
    output.add_argument("--opacity", type=arguments.unit_interval, default=0.5,
                         help="overlay opacity, 0 (frame only) to 1 (colours only); default 0.5")
    output.add_argument("--side-by-side", action="store_true", help="write the frame and its overlay side by side (twice the width)")
    output.add_argument("--masks", type=arguments.folder, help="also write each frame's train-id mask as a PNG into this folder")
    output.add_argument("--fps", type=arguments.frame_rate, help=f"output frame rate (default: the input's, else {DEFAULT_FPS:g})")
    output.add_argument("--max-frames", type=arguments.positive_int, help="stop after this many frames")
    output.add_argument("--overwrite", action="store_true",
                        help="replace an existing output video, and the masks an earlier run wrote (removing those it does not "
                             "rewrite), once the new run has succeeded")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    model_options.check_model_arguments(parser, args)
    return args


def load_predictor(args: argparse.Namespace):
    """The predictor of the model options, with the video tool's default threads."""
    import torch

    threads = args.threads
    if threads is None and args.device == "cpu" and _runs_on_torch(args):
        # the reader and writer threads need a core: a PyTorch model using them all stalls in
        # OpenMP barriers while they run (measured 10x slower on 2 busy cores). OpenVINO and ONNX
        # Runtime take every core: on 2 cores, 768x576 frames, 10.0 fps with 2 threads against
        # 7.7 with 1 (OpenVINO), 9.2 against 8.3 (ONNX Runtime)
        threads = max(1, torch.get_num_threads() - 1)
    if threads is not None:
        torch.set_num_threads(threads)  # ONNX Runtime sessions of the predictor follow it too
    return model_options.load_predictor(args, "frame", num_threads=threads, channels_last=args.channels_last)


def report(stats, output: Path | None, partial: bool = False) -> None:
    what = "frames (partial: the run stopped early)" if partial else "frames"
    print(f"{what}: {stats.frames}")
    print(f"model-only fps: {stats.model_fps:.2f} ({stats.model_seconds:.2f} s in the model)")
    print(f"end-to-end fps: {stats.end_to_end_fps:.2f} ({stats.total_seconds:.2f} s in all)")
    print(f"output: {output or 'none'}")


def _runs_on_torch(args: argparse.Namespace) -> bool:
    """True when the model will run in PyTorch (``--backend torch``, or ``auto`` with neither runtime installed)."""
    if args.onnx is not None or args.openvino is not None or args.model is not None:
        return False
    if args.backend != "auto":
        return args.backend == "torch"
    from seglite.inference.choice import auto_backend

    try:
        return auto_backend(args.device, args.precision)[0] == "torch"
    except ValueError:  # an impossible precision: reported when the predictor is made
        return False


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's stop): the run stops and cleans up as on Ctrl-C."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not break off the clean-up
    raise Terminated


def run(args: argparse.Namespace):
    """Segment ``args.input`` into ``args.output``; returns the run's ``VideoStats``.

    An earlier OUTPUT and masks are replaced only once the run has succeeded. A run that stops
    early raises, with a note (``add_note``) saying what it kept and that the outputs are as they were.
    """
    from seglite.files import missing_folders, remove_empty_folders

    created = missing_folders(args.output.parent)
    try:
        return _segment(args)
    finally:
        remove_empty_folders(created)  # only empty ones: a kept video or partial file keeps its folder


def _segment(args: argparse.Namespace):
    from seglite.files import signals_deferred
    from seglite.inference.video import MaskFolder, VideoPipeline, VideoSink, check_video_output, open_source

    with open_source(args.input) as source:
        # every output is checked before the model loads (which takes seconds)
        existed = args.output.exists()
        check_video_output(args.output, args.overwrite, source.inputs)
        masks = MaskFolder(args.masks, source, args.overwrite) if args.masks is not None else None
        sink, committed = None, False
        try:
            predictor = load_predictor(args)
            print(f"model: {predictor.description}")
            pipeline = VideoPipeline(predictor, args.batch, args.opacity, args.side_by_side, masks)
            fps = args.fps or source.fps or DEFAULT_FPS
            sink = VideoSink(args.output, fps, pipeline.output_size(source.size), args.overwrite, source.inputs)
            stats = pipeline.run(source, sink, args.max_frames, progress=not args.no_progress)
            sink.finish()
            with signals_deferred():  # both outputs move in, or neither: Ctrl-C waits until they have
                if masks is not None:
                    masks.commit()  # first: it re-checks the folder, and may refuse
                sink.commit()
                committed = True
        except BaseException as stop:
            if committed:  # a signal held during the moves: the run itself is complete
                stop.add_note(f"the run had finished: {args.output} is written")
                raise
            kept = sink.abandon() if sink is not None else None
            if masks is not None:
                masks.discard()
            if sink is not None:
                stop.add_note(stopped_early(args, sink.frames_written, kept, existed))
                if isinstance(stop, KeyboardInterrupt):
                    report(pipeline.stats, kept, partial=True)
            raise
        warn_of_missing_frames(source, stats.frames, args.max_frames)
        return stats


def stopped_early(args: argparse.Namespace, done: int, kept: Path | None, existed: bool) -> str:
    """What a run that stopped early left: where the frames done are, and the outputs as they were."""
    from seglite.inference.video import partial_path

    if kept is not None:
        frames = f"the {done} frames done are kept in {kept}"
    elif done == 0:
        frames = "no frame was done"
    elif partial_path(args.output).exists():
        frames = f"the {done} frames done were discarded ({partial_path(args.output)} exists; --overwrite replaces it)"
    else:
        frames = f"the {done} frames done were discarded"
    outputs = f"{args.output} is as it was" if existed else f"{args.output} was not written"
    if args.masks is not None:
        outputs += f"; the masks folder {args.masks} is as it was"
    return f"{frames}; {outputs}"


def warn_of_missing_frames(source: FrameSource, frames: int, max_frames: int | None) -> None:
    """One line when a video file ended before the frame count its header announces (a truncated file)."""
    announced = source.frame_count
    if announced is None or not source.description.startswith("video "):
        return
    if frames < min(announced, max_frames or announced):
        print(f"infer_video: warning: {source.description} ended after {frames} of the {announced} frames its header "
              f"announces (truncated or damaged?); the output holds those {frames}", file=sys.stderr)


def _notes(error: BaseException) -> str:
    return "".join(f"; {note}" for note in getattr(error, "__notes__", []))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM is ours to handle in the main thread, unless the process was started ignoring it
    own_sigterm = threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_IGN, None)
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm) if own_sigterm else None
    try:
        stats = run(args)
    except SegliteError as error:
        print(f"infer_video: error: {error}{_notes(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # also during start-up, before any frame
        cause, number = ("SIGTERM", signal.SIGTERM) if isinstance(stop, Terminated) else ("Ctrl-C", signal.SIGINT)
        print(f"infer_video: interrupted by {cause}{_notes(stop)}", file=sys.stderr)
        return 128 + number
    finally:
        if own_sigterm:
            signal.signal(signal.SIGTERM, previous_sigterm)
    report(stats, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
