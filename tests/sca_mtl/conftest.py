"""A tiny synthetic NYUD-layout set and a config that trains SCA-MTL on it in about a second per step."""

import pytest

from sca_mtl.config import load_config
from sca_mtl.data.synthetic import CLASSES, write_synthetic_nyud

# 8 images: 6 train (3 batches of 2 per epoch, so 4 steps cross an epoch boundary), 2 val.
TINY_IMAGES, TINY_SIZE = 8, (48, 64)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    return write_synthetic_nyud(tmp_path_factory.mktemp("synthetic"), TINY_IMAGES, size=TINY_SIZE, seed=3,
                                val_fraction=0.25, progress=False)


@pytest.fixture
def tiny_overrides(tiny_root):
    return [
        f"data.root={tiny_root}",
        "data.size=[32, 32]",
        "data.num_workers=0",
        # the demo's tasks but edge, which has a test of its own
        f"tasks={{semseg: {len(CLASSES)}, depth: 1, normals: 3}}",
        "loss_weights={semseg: 1.0, depth: 1.0, normals: 10.0}",
        "train.batch_size=2",
        "train.log_every=1",
        "train.eval_last_epochs=0",
        "eval.batch_size=2",
        "eval.num_images=2",
        "optim.epochs=4",
    ]


@pytest.fixture
def tiny_config(tiny_overrides):
    return load_config("synthetic_sca_mtl", tiny_overrides)
