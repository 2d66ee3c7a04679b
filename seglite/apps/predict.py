"""Segment images into mask PNGs and colour overlays.

    python tools/predict.py photo.jpg --checkpoint last.ckpt --output out/
    python tools/predict.py photo.jpg --checkpoint last.ckpt --backend torch --output out/   # exact fp32 PyTorch
    python tools/predict.py data/demo/leftImg8bit/val --onnx model.onnx --output out/ --color
    python tools/predict.py "frames/*.png" --openvino model.int8.xml --output out/
    python tools/predict.py data/demo/leftImg8bit/val --model model.pte --output out/   # ExecuTorch / LiteRT (.tflite)
    python tools/predict.py "frames/*.png" --checkpoint last.ckpt --size 512 1024 --output out/

The model runs on the fastest backend of this machine whose accuracy is checked (--backend
auto: OpenVINO and ONNX Runtime timed on the model the first time it runs on a machine, the
choice kept and printed at the start; PyTorch where neither is installed); int8
models come from tools/export.py --format openvino --precision int8 and run with --openvino.

For every input image NAME.EXT the output folder gets NAME_mask.png (train ids 0..C-1, or the
palette's colours with --color) and NAME_overlay.png (the mask blended over the image). A photo
with an EXIF orientation (phones write one instead of turning the pixels) is segmented turned as
the tag says, as viewers show it, and so are its outputs; training and evaluation read images as
stored instead, as their masks are drawn over the stored pixels. Folders
are searched recursively and their sub-folders are kept in the output; an output folder inside
an input folder is skipped while searching, and so are images seglite wrote itself (listed in
the .seglite-outputs.json of their folder, or of a folder above it up to the input folder).
Existing outputs are never replaced without --overwrite, which replaces only files seglite
wrote (listed in the output folder's .seglite-outputs.json once written), never writes through
a symbolic link and never onto an input. A run that fails before writing anything removes the
output folder it created.
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from seglite.apps import arguments
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
    parser.add_argument("--output", type=arguments.folder, required=True, help="output folder")
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


def _listed_outputs(file: Path, top: Path, manifests: dict[Path, object]) -> bool:
    """True when ``file`` is listed as seglite's output in the manifest of its folder or of a
    folder above it, up to ``top`` (the input folder)."""
    from seglite.files import OutputManifest

    folder = file.parent
    while True:
        if folder not in manifests:
            manifests[folder] = OutputManifest(folder)
        try:
            if manifests[folder].owns(file):
                return True
        except SegliteError:  # a link on the way: not a listed output
            pass
        if folder == top or folder == folder.parent or not _inside(folder.parent, top):
            return False
        folder = folder.parent


def _glob_root(pattern: str) -> Path:
    """The folder a glob searches from: its leading parts without wildcards."""
    parts = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def find_images(inputs: list[str], output: Path | None = None) -> list[tuple[Path, Path]]:
    """(image file, output path stem relative to the output folder) for every input, in order.

    Files inside ``output`` are skipped, so a run whose output folder lies inside its input
    folder never segments its own masks; so are images of a folder or a glob that seglite wrote
    (listed in a manifest, see ``_listed_outputs``), with a message saying how many. Images named
    one by one are always taken.
    """
    from seglite.files import IMAGE_EXTENSIONS, MANIFEST_NAME, is_image_file

    manifests: dict[Path, object] = {}
    skipped: dict[str, int] = {}

    def in_output(file: Path) -> bool:
        return output is not None and _inside(file, output)

    def take(images: list[Path], top: Path, source: str, where: str) -> list[Path]:
        """``images`` but those seglite wrote (counted); an error when that leaves none of them."""
        kept = []
        for file in images:
            if _listed_outputs(file, top, manifests):
                skipped[source] = skipped.get(source, 0) + 1
            else:
                kept.append(file)
        if images and not kept:
            raise PredictToolError(
                f"the {len(images)} image(s) {where} were all written by seglite (listed in {MANIFEST_NAME}); "
                "give the original images"
            )
        return kept

    found: list[tuple[Path, Path]] = []
    for source in inputs:
        path = Path(source)
        if path.is_dir():
            if output is not None and _inside(path, output):
                where = "is also the output folder" if _inside(output, path) else f"lies inside the output folder {output}"
                raise PredictToolError(
                    f"input folder {path} {where}, whose files are never read as inputs (they may be seglite's "
                    "outputs): give another --output"
                )
            images = sorted(p for p in path.rglob("*") if is_image_file(p) and not in_output(p))
            files = take(images, path, source, f"in folder {path}")
            if not files:
                raise PredictToolError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in folder {path}")
            found += [(file, file.relative_to(path).with_suffix("")) for file in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        elif glob.has_magic(source):
            matches = sorted(Path(p) for p in glob.glob(source, recursive=True) if is_image_file(p))
            images = [file for file in matches if not in_output(file)]
            if matches and not images:
                raise PredictToolError(
                    f"all {len(matches)} image(s) matching {source!r} lie in the output folder {output}, whose "
                    "files are never read as inputs (they may be seglite's outputs): give another --output"
                )
            files = take(images, _glob_root(source), source, f"matching {source!r}")
            if not files:
                raise PredictToolError(f"no images match {source!r}")
            found += [(file, Path(file.stem)) for file in files]
        else:
            raise PredictToolError(f"input not found: {path} (expected an image file, a folder or a glob of images)")
    for source, count in skipped.items():
        print(f"skipped {count} image(s) of {source} that seglite wrote (listed in {MANIFEST_NAME})")
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
    """Check every output before the model loads; returns the output folder's manifest, in
    which ``run`` claims each output once written."""
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
    return manifest


def run(args: argparse.Namespace) -> int:
    """Segment every input; returns the number of images.

    A run that fails before writing any output removes the output folders it created.
    """
    from seglite.files import missing_folders, remove_empty_folders

    images = find_images(args.inputs, args.output)
    created = missing_folders(args.output)
    manifest = None
    try:
        manifest = prepare_outputs(images, args.output, not args.no_overlay, args.overwrite)
        return _segment(args, images, manifest)
    finally:
        if manifest is None or not manifest.owned():
            remove_empty_folders(created)


def _segment(args: argparse.Namespace, images: list[tuple[Path, Path]], manifest) -> int:
    from seglite.data.io import read_rgb
    from seglite.files import write_image
    from seglite.visualization import colorize, default_palette, overlay, palette_array

    overlay_wanted = not args.no_overlay
    predictor = load_predictor(args, "image")
    print(f"model: {predictor.description}")
    colours = predictor.palette if predictor.palette is not None else default_palette(predictor.num_classes)
    palette = palette_array(colours)
    try:
        for start in range(0, len(images), args.batch):
            chunk = images[start : start + args.batch]
            rgb = [read_rgb(file, orientation="exif") for file, _ in chunk]  # as viewers show them
            for (_, stem), image, mask in zip(chunk, rgb, predictor.predict_batch(rgb)):
                paths = output_paths(stem, args.output, overlay_wanted)
                paths[0].parent.mkdir(parents=True, exist_ok=True)
                # RGB colours are written as OpenCV's BGR; each output is claimed once written
                write_image(paths[0], colorize(mask, palette)[..., ::-1] if args.color else mask, durable=False)
                manifest.record([paths[0]])
                if overlay_wanted:
                    write_image(paths[1], overlay(image, mask, palette, args.opacity)[..., ::-1], durable=False)
                    manifest.record([paths[1]])
            manifest.save(durable=False, at_most_every=1.0)
    finally:
        manifest.save()
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
