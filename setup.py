from setuptools import find_packages, setup

setup(
    name="seglite",
    version="0.1.0",
    description="Semantic segmentation on lightweight backbones (MobileNets, ShuffleNets) with PyTorch Lightning",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["seglite", "seglite.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy",
        "pytorch-lightning>=2.2",
        "torchmetrics>=1.0",
        "segmentation-models-pytorch>=0.3.3",
        "albumentations>=1.4",
        "opencv-python-headless>=4.8",
        "jsonargparse[signatures]>=4.27",
        "tensorboard",
        "pyyaml",
        "tqdm",
    ],
    extras_require={
        "deploy": ["onnx>=1.14", "onnxruntime>=1.16"],
        # OpenVINO runtime (fp32, bf16 on CPUs with AMX/AVX512-BF16) and NNCF int8; versions tested: 2026.4.1, 3.4.0
        "openvino": ["onnx>=1.14", "openvino>=2026.4", "nncf>=3.4"],
        "dev": ["pytest>=7", "onnx>=1.14", "onnxruntime>=1.16", "openvino>=2026.4", "nncf>=3.4"],
    },
    entry_points={"console_scripts": ["seglite=seglite.lit.cli:main"]},
)
