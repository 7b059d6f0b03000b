"""Config files, overrides and their checks."""

import pytest

from sca_mtl.config import CONFIG_DIR, ConfigError, apply_overrides, from_mapping, load_config
from sca_mtl.models import build_model
from sca_mtl.tasks import check_tasks


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_load_and_name_known_tasks(path):
    config = load_config(path.stem)
    check_tasks(config["tasks"])
    assert set(config["loss_weights"]) <= set(config["tasks"]) | set(config["auxiliary_tasks"])
    assert all(n % 32 == 0 for n in config["data"]["size"])


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_build_their_model(path):
    config = load_config(path.stem)
    model = config["model"]
    # a single_task config lists the tasks of its table, each trained alone (`sca-mtl single-task`)
    task_sets = [{t: n} for t, n in config["tasks"].items()] if model["name"] == "single_task" else [config["tasks"]]
    for tasks in task_sets:
        build_model(model["name"], tasks, backbone=model["backbone"], kernels="torch",
                    auxiliary_tasks=config["auxiliary_tasks"], **model["options"])


def test_paper_recipe_in_the_nyud_config():
    config = load_config("nyud_sca_mtl_semseg-depth")
    assert config["optim"] == {"optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-4, "momentum": 0.9, "epochs": 100,
                               "poly_power": 0.9}
    assert config["train"]["batch_size"] == 10 and config["loss_weights"] == {"semseg": 1.44, "depth": 1.15}


def test_overrides_reach_any_key_with_yaml_values():
    config = load_config("synthetic_sca_mtl", ["optim.lr=2e-4", "train.amp=bf16", "data.size=[64, 96]",
                                               "tasks.edge=1", "model.options.qk_convs=1", "train={seed: 7}"])
    assert config["optim"]["lr"] == 2e-4 and isinstance(config["optim"]["lr"], float)
    assert config["train"]["amp"] == "bf16" and config["train"]["seed"] == 7
    assert config["train"]["batch_size"] == 4  # a mapping override merges, it does not replace the section
    assert config["data"]["size"] == [64, 96]
    assert config["tasks"]["edge"] == 1 and config["tasks"]["semseg"] == 10
    assert config["model"]["options"] == {"qk_convs": 1}


def test_a_free_form_mapping_given_whole_replaces():
    config = apply_overrides(from_mapping({"tasks": {"semseg": 40, "depth": 1}}), ["tasks={normals: 3}"])
    assert config["tasks"] == {"normals": 3}


@pytest.mark.parametrize(
    "override, words",
    [
        ("train.batchsize=3", ["train.batchsize", "batch_size"]),
        ("trian.seed=1", ["trian"]),
        ("train.batch_size=3.5", ["train.batch_size", "int", "3.5"]),
        ("optim.lr=fast", ["optim.lr", "float"]),
        ("optim.lr.x=1", ["optim.lr"]),
        ("no-equals-sign", ["key.sub=value"]),
        ("data.size=[1, 2", ["data.size", "YAML"]),
    ],
)
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(ConfigError) as info:
        load_config("synthetic_sca_mtl", [override])
    for word in words:
        assert word in str(info.value)


def test_unknown_config_file_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="synthetic_sca_mtl"):
        load_config("no_such_config")


def test_config_file_with_an_unknown_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train: {batch_size: 2, epochs: 3}\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(str(path))


def test_single_task_recipes_are_mti_nets():
    """MTI-Net's single-task configs: Adam on NYUD-v2, SGD with momentum for 60 epochs on PASCAL-Context."""
    nyud = load_config("nyud_single_task_semseg-depth")
    pascal = load_config("pascal_context_single_task_semseg-normals")
    assert nyud["optim"]["optimizer"] == "adam" and nyud["optim"]["epochs"] == 100
    assert pascal["optim"] == {"optimizer": "sgd", "lr": 1e-2, "weight_decay": 1e-4, "momentum": 0.9, "epochs": 60,
                               "poly_power": 0.9}
