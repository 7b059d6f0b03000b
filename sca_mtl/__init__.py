"""sca-mtl: SCA-MTL (Sequential Cross Attention Multi-Task Learning, ICIP 2022) for dense scene understanding."""

__version__ = "0.1.0"
