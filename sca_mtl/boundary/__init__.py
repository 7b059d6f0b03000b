"""Boundary detection scores in Python, without MATLAB: SEISM's ODS / OIS F-measure and AP (benchmark.py), built from
its non-maximum suppression (nms.py), MATLAB's thinning (thinning.py) and BSDS's pixel correspondence (matching.py)."""

from .benchmark import (
    COUNTS,
    DEFAULT_THRESHOLDS,
    MAX_DIST,
    BoundaryCounts,
    ImageCounter,
    check_image,
    default_workers,
    evaluate,
    image_counts,
    threshold_levels,
)
from .matching import match_pixels
from .nms import suppress_non_maxima
from .thinning import thin

__all__ = ["COUNTS", "DEFAULT_THRESHOLDS", "MAX_DIST", "BoundaryCounts", "ImageCounter", "check_image",
           "default_workers", "evaluate", "image_counts", "match_pixels", "suppress_non_maxima", "thin",
           "threshold_levels"]
