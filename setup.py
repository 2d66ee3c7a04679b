import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# one version number: the package's own
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "seglite" / "__init__.py").read_text(encoding="utf-8"), re.M).group(1)

# the command-line tools, each `seglite.apps.<tool>.main` (tools/<tool>.py in a checkout; tests/test_arguments.py keeps both lists equal)
TOOLS = ["class_stats", "complexity", "export", "infer_video", "inspect_model", "make_demo_data", "predict", "show_predictions",
         "test", "train"]

setup(
    name="seglite",
    version=VERSION,
    description="Semantic segmentation on lightweight backbones (MobileNets, ShuffleNets) with PyTorch Lightning",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["seglite", "seglite.*"]),
    python_requires=">=3.10",
    # Lower bounds checked by tools/check_lower_bounds.sh (every dependency installed at its bound,
    # fast tests run); the comment names what sets each bound.
    install_requires=[
        "torch>=2.4",  # torch.onnx.export(..., dynamo=False): the keyword is new in 2.4
        "torchvision>=0.19",  # the release of torch 2.4 (the tests compare with its models)
        "numpy>=1.24.4",  # albumentations 2.0's own lower bound
        "pillow>=9.3.0",  # PIL.Image header reads; first release with Python 3.11 wheels
        # 2.5.5: LightningCLI._parse_ckpt_path, which seglite.lit.lightning_private overrides; 2.5.3: ModelCheckpoint(save_on_exception)
        "pytorch-lightning>=2.5.5",
        "torchmetrics>=1.0",  # MulticlassConfusionMatrix
        "segmentation-models-pytorch>=0.5.0",  # scriptable encoders and decoders (_is_torch_scriptable); 0.3.4: losses
        "albumentations>=2.0.0",  # DualTransform.py_random, fill_mask, Compose.set_random_seed, no always_apply
        "pydantic>=2.9.2",  # InitSchema fields of RandomScaleCrop; albumentations 2.0's own lower bound
        "opencv-python-headless>=4.11.0.86",  # cv2.IMREAD_COLOR_RGB
        # 4.51: a constructor's own ValueError stays reachable under a union type's error (one-line config
        # errors); 4.48: argparse-style "unrecognized arguments"; 4.39: applied_instantiation_links.
        # <5: pytorch-lightning 2.6's LightningCLI calls add_instantiator, instantiate_classes and
        # dump(skip_none=...), which jsonargparse 4.49 deprecated for removal in 5.0 (its own warnings)
        "jsonargparse[signatures]>=4.51.0,<5",
        "tensorboard>=2.12.0",  # TensorBoardLogger images (event_accumulator in the tests); 2.11 caps protobuf<4
        "pyyaml>=6.0",  # YAML configs (read by jsonargparse; the tests write some)
        "tqdm>=4.57.0",  # pytorch-lightning 2.5.2's own lower bound
    ],
    extras_require={
        "deploy": ["onnx>=1.14", "onnxruntime>=1.16.1"],  # 1.16.0 refuses sessions without providers
        "bench": ["matplotlib>=3.6"],  # the latency-against-GMACs plot of benchmarks/benchmark.py; 3.6: the first with Python 3.11 wheels
        # OpenVINO runtime (fp32, bf16 on CPUs with AMX/AVX512-BF16) and NNCF int8; versions tested: 2026.4.1, 3.4.0
        "openvino": ["onnx>=1.14", "openvino>=2026.4", "nncf>=3.4"],
        # phones (README, "On a phone"): ExecuTorch .pte and LiteRT .tflite on XNNPACK. ExecuTorch's bindings link
        # torch's libraries, so a release pairs with the torch it was built for: 1.5.1 is tested here with torch 2.14.1
        "executorch": ["executorch>=1.5.1"],
        # litert-torch 0.10.0 converts torch 2.14's torch.export graphs; ai-edge-litert 2.3.0 is its interpreter
        "litert": ["litert-torch>=0.10.0", "ai-edge-litert>=2.3.0"],
        "dev": [
            "pytest>=7",
            "pytest-xdist>=3.0.2",  # the suite runs on every core (pytest.ini: -n auto); 3.0.2 is the first 3.x on PyPI
            "ruff>=0.15",
            "onnx>=1.14",
            "onnxruntime>=1.16.1",
            "openvino>=2026.4",
            "nncf>=3.4",
            "matplotlib>=3.6",
            # the ExecuTorch tests (about 0.3 GB, 30 s to install). Not LiteRT: it adds 0.9 GB (JAX, transformers)
            # and pins pydantic and typing-extensions below what other packages here need; its tests skip without it
            "executorch>=1.5.1",
        ],
    },
    # `seglite fit|validate|test|predict` (LightningCLI), and each tool as `seglite-<tool>`: the same
    # `seglite.apps.<tool>.main` that `python tools/<tool>.py` runs from a checkout
    entry_points={"console_scripts": ["seglite=seglite.lit.cli:main"] + [
        f"seglite-{tool.replace('_', '-')}=seglite.apps.{tool}:main" for tool in TOOLS
    ]},
)
