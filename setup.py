from setuptools import find_packages, setup

setup(
    name="seglite",
    version="0.2.0",
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
        "bench": ["matplotlib>=3.5"],  # the latency-against-GMACs plot of tools/benchmark.py
        "dev": ["pytest>=7", "onnx>=1.14", "onnxruntime>=1.16", "matplotlib>=3.5"],
    },
    entry_points={"console_scripts": ["seglite=seglite.lit.cli:main"]},
)
