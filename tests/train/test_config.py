import pytest

from sweepkit.errors import ConfigError
from sweepkit.train.config import TrainConfig


def test_defaults_are_the_seeds_and_img_count_is_derived():
    cfg, unknown = TrainConfig.from_mapping({})
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (1, 32, 0.001)
    assert (cfg.l1_size, cfg.l2_size, cfg.conv_kernel) == (32, 64, 5)
    assert (cfg.num_batches_to_log, cfg.images_per_batch) == (10, 32)
    assert cfg.to_dict()["img_count"] == 320
    assert unknown == []


def test_loosely_typed_sweep_and_cli_values_are_coerced():
    cfg, _ = TrainConfig.from_mapping({"l1_size": 16.0, "lr": "0.01", "epochs": "2"})
    assert (cfg.l1_size, cfg.lr, cfg.epochs) == (16, 0.01, 2)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"lr": 0}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"l1_size": "abc"}, "l1_size"),
        ({"l2_size": 2.5}, "l2_size"),
        ({"epochs": True}, "epochs"),
        ({"conv_kernel": 4}, "conv_kernel"),
        ({"dataset": "cifar10"}, "dataset"),
        ({"device": "tpu"}, "device"),
        ({"max_train": -1}, "max_train"),
        ({"watch": "weights"}, "watch"),
        ({"watch_freq": 0}, "watch_freq"),
        ({"caption_images": -1}, "caption_images"),
        ({"curves": "maybe"}, "curves"),
        ({"curves": 2}, "curves"),
    ],
)
def test_each_bad_value_gives_an_error_naming_its_key(values, key):
    with pytest.raises(ConfigError, match=rf"\b{key}\b"):
        TrainConfig.from_mapping(values)


def test_every_bad_key_is_reported_at_once():
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_mapping({"lr": -1, "epochs": 0, "watch": "all_of_it", "watch_freq": -5})
    message = str(info.value)
    assert all(key in message for key in ("lr", "epochs", "watch ", "watch_freq"))
    assert "gradients, parameters, all" in message  # says what watch may be


def test_logging_keys_default_to_cheap_and_accept_sweep_and_cli_forms():
    cfg, _ = TrainConfig.from_mapping({})
    assert (cfg.curves, cfg.caption_images, cfg.watch, cfg.watch_freq) == (True, 16, "none", 100)
    for raw, expected in ((False, False), (0, False), ("false", False), ("Yes", True), (1, True)):
        assert TrainConfig.from_mapping({"curves": raw})[0].curves is expected
    cfg, _ = TrainConfig.from_mapping({"watch": "all", "watch_freq": 10.0})
    assert (cfg.watch, cfg.watch_freq) == ("all", 10)


def test_unknown_keys_are_returned_not_fatal():
    cfg, unknown = TrainConfig.from_mapping({"optimizer": "adam", "dropout": 0.1, "lr": 0.01})
    assert unknown == ["dropout", "optimizer"]
    assert cfg.lr == 0.01
