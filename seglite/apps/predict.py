"""Segment images into mask PNGs and colour overlays.

    python tools/predict.py photo.jpg --checkpoint last.ckpt --output out/
    python tools/predict.py photo.jpg --checkpoint last.ckpt --backend torch --output out/   # exact fp32 PyTorch
    python tools/predict.py data/demo/leftImg8bit/val --onnx model.onnx --output out/ --color
    python tools/predict.py "frames/*.png" --openvino model.int8.xml --output out/
    python tools/predict.py "frames/*.png" --checkpoint last.ckpt --size 512 1024 --output out/

The model runs on the fastest backend of this machine whose accuracy is checked (--backend
auto, printed at the start: OpenVINO where installed, else ONNX Runtime, else PyTorch); int8
models come from tools/export.py --format openvino --precision int8 and run with --openvino.

For every input image NAME.EXT the output folder gets NAME_mask.png (train ids 0..C-1, or the
palette's colours with --color) and NAME_overlay.png (the mask blended over the image). Folders
are searched recursively and their sub-folders are kept in the output; an output folder inside
an input folder is skipped while searching. Existing outputs are never replaced without
--overwrite, which replaces only files seglite wrote (listed in the folder's
.seglite-outputs.json), never writes through a symbolic link and never onto an input.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from seglite.apps.model_options import add_model_arguments, check_model_arguments, load_predictor
from seglite.errors import SegliteError

MASK_SUFFIX = "_mask.png"
OVERLAY_SUFFIX = "_overlay.png"


class PredictToolError(SegliteError):
    """An input, output or option of tools/predict.py is unusable."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("inputs", nargs="+", help="image files, folders or quoted globs such as 'frames/*.png'")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    add_model_arguments(parser, "image")
    output = parser.add_argument_group("output")
    output.add_argument("--color", action="store_true", help="colour masks in the palette instead of train ids")
    output.add_argument("--no-overlay", action="store_true", help="write the masks only")
    output.add_argument("--opacity", type=float, default=0.5, help="overlay opacity, 0 (image only) to 1 (colours only); default 0.5")
    output.add_argument("--overwrite", action="store_true", help="replace outputs an earlier run of seglite wrote")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_model_arguments(parser, args)
    if not 0.0 <= args.opacity <= 1.0:
        parser.error(f"--opacity must be between 0 and 1, got {args.opacity}")
    return args


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def find_images(inputs: list[str], output: Path | None = None) -> list[tuple[Path, Path]]:
    """(image file, output path stem relative to the output folder) for every input, in order.

    Files inside ``output`` are skipped, so a run whose output folder lies inside its input
    folder never segments its own masks.
    """
    from seglite.files import IMAGE_EXTENSIONS, is_image_file

    def wanted(file: Path) -> bool:
        return is_image_file(file) and not (output is not None and _inside(file, output))

    found: list[tuple[Path, Path]] = []
    for source in inputs:
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if wanted(p))
            if not files:
                raise PredictToolError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
            found += [(file, file.relative_to(path).with_suffix("")) for file in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        elif glob.has_magic(source):
            files = sorted(Path(p) for p in glob.glob(source, recursive=True) if wanted(Path(p)))
            if not files:
                raise PredictToolError(f"no images match {source!r}")
            found += [(file, Path(file.stem)) for file in files]
        else:
            raise PredictToolError(f"input not found: {path} (expected an image file, a folder or a glob of images)")
    by_stem: dict[Path, Path] = {}
    for file, stem in found:
        if stem in by_stem and by_stem[stem].resolve() != file.resolve():
            raise PredictToolError(
                f"{by_stem[stem]} and {file} would write the same outputs ({stem}{MASK_SUFFIX}); rename one or run them separately"
            )
        by_stem[stem] = file
    return [(file, stem) for stem, file in by_stem.items()]


def output_paths(stem: Path, output: Path, overlay: bool) -> list[Path]:
    paths = [output / f"{stem}{MASK_SUFFIX}"]
    return paths + [output / f"{stem}{OVERLAY_SUFFIX}"] if overlay else paths


def prepare_outputs(images: list[tuple[Path, Path]], output: Path, overlay: bool, overwrite: bool):
    """Check every output before the model loads and claim them in the folder's manifest."""
    from seglite.files import OutputManifest, make_dir, same_file

    make_dir(output)
    manifest = OutputManifest(output)
    planned = [path for _, stem in images for path in output_paths(stem, output, overlay)]
    manifest.check(planned, overwrite)
    inputs = [file for file, _ in images]
    for path in planned:
        for file in inputs:
            if same_file(path, file):
                raise PredictToolError(f"output {path} is the input {file}; choose another output folder")
    manifest.claim(planned)
    return manifest


def run(args: argparse.Namespace) -> int:
    """Segment every input; returns the number of images."""
    from seglite.data.io import read_rgb
    from seglite.files import write_image
    from seglite.visualization import colorize, default_palette, overlay, palette_array

    images = find_images(args.inputs, args.output)
    overlay_wanted = not args.no_overlay
    prepare_outputs(images, args.output, overlay_wanted, args.overwrite)
    predictor = load_predictor(args, "image")
    print(f"model: {predictor.description}")
    colours = predictor.palette if predictor.palette is not None else default_palette(predictor.num_classes)
    palette = palette_array(colours)
    for start in range(0, len(images), args.batch):
        chunk = images[start : start + args.batch]
        rgb = [read_rgb(file) for file, _ in chunk]
        for (_, stem), image, mask in zip(chunk, rgb, predictor.predict_batch(rgb)):
            paths = output_paths(stem, args.output, overlay_wanted)
            paths[0].parent.mkdir(parents=True, exist_ok=True)
            # RGB colours are written as OpenCV's BGR
            write_image(paths[0], colorize(mask, palette)[..., ::-1] if args.color else mask, durable=False)
            if overlay_wanted:
                write_image(paths[1], overlay(image, mask, palette, args.opacity)[..., ::-1], durable=False)
    kinds = "masks and overlays" if overlay_wanted else "masks"
    print(f"wrote {kinds} of {len(images)} image(s) to {args.output}")
    return len(images)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except SegliteError as error:
        print(f"predict: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("predict: interrupted; the outputs written so far are complete files", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
