"""Installs the two packages of sca-mtl: `kernels` (Triton ops + PyTorch references) and `sca_mtl` (model, CLI)."""

from setuptools import find_packages, setup

setup(
    name="sca-mtl",
    version="0.1.0",
    description="SCA-MTL (Sequential Cross Attention Multi-Task Learning) with hand-written Triton kernels",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kernels", "kernels.*", "sca_mtl", "sca_mtl.*"]),
    package_data={"sca_mtl": ["configs/*.yaml", "data/db_info/*.json", "paper_results.yaml"]},
    install_requires=[
        "torch>=2.4",
        "triton>=3.0; platform_system == 'Linux'",
        "timm>=0.9.6",  # window padding for non-multiple sizes and features_only HRNet with feature_location=""
        "numpy",
        "scipy>=1.8",  # .mat files of PASCAL human parts; the boundary matching's maximum_flow(method="dinic")
        "opencv-python-headless",  # the released code's augmentation (warpAffine, resize) exactly
        "pillow",
        "matplotlib",
        "pyyaml",
        "tqdm",
    ],
    extras_require={"dev": ["pytest>=7.3", "pytest-xdist>=3.2", "pytest-benchmark", "ruff"]},
    entry_points={"console_scripts": ["sca-mtl = sca_mtl.cli:main"]},
)
