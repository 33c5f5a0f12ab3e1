"""RGANet as a fast-reid plugin.

fast-reid itself (``fastreid==1.4.0`` on PyPI) pins torch 1.13, so it is installed with
``--no-deps`` by ``scripts/setup_env.sh``; the dependencies it really uses are listed here.
"""
from setuptools import find_packages, setup

setup(
    name="rganet-plugin",
    version="0.1.0",
    description="RGANet (Region Generation and Assessment Network, IEEE TIFS) as a fast-reid plugin",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["rganet_plugin", "rganet_plugin.*"]),
    package_data={"rganet_plugin": ["modeling/backbones/clip_configs/*.json"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "open_clip_torch>=2.20",
        "faiss-cpu>=1.7",
        "yacs",
        "tabulate",
        "termcolor",
        "scikit-learn",
        "opencv-python-headless",
        "tensorboard",
        "safetensors",
        "numpy",
        "Pillow",
        "tqdm",
    ],
    extras_require={
        # onnx/onnxruntime: ONNX export (python -m rganet_plugin.tools export --onnx) and its test
        "test": ["pytest", "onnx", "onnxruntime"],
        "export": ["onnx", "onnxruntime"],
        "bench": ["fvcore", "matplotlib"],
        # faiss-gpu wheels are published per CUDA version; pick the one matching your driver.
        "gpu": ["faiss-gpu-cu12"],
    },
    entry_points={
        "console_scripts": [
            "rganet-train=rganet_plugin.tools.train:main",
        ]
    },
)
