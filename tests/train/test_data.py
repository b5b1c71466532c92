import pytest
import torch
import torchvision

from sweepkit.errors import DataError
from sweepkit.train import data


def test_bundled_sample_loads_through_torchvisions_mnist(data_dir):
    loaded = data.load_mnist("sample", data_dir)
    root = data._unpack_sample(data.Path(data_dir))
    # The same files read by torchvision's own class, with no help from sweepkit.
    direct = torchvision.datasets.MNIST(str(root), train=False, download=False)
    assert torch.equal(direct.data, loaded.test_images)
    assert loaded.train_images.shape == (4000, 28, 28) and loaded.train_images.dtype == torch.uint8
    assert loaded.test_images.shape == (1000, 28, 28)
    assert torch.bincount(loaded.train_labels).tolist() == [400] * 10
    assert torch.bincount(loaded.test_labels).tolist() == [100] * 10
    # Real digits: mostly black background with strokes, like MNIST's mean of ~33/255.
    assert 20 < loaded.train_images.float().mean() < 50
    assert loaded.source == "sample"


def test_auto_falls_back_to_the_sample_with_one_line_when_mnist_is_unavailable(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(data, "_try_download", lambda data_dir: False)  # the network boundary
    loaded = data.load_mnist("auto", str(tmp_path))
    assert loaded.source == "sample"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sample" in err[0] and "MNIST/raw" in err[0]


def test_full_mnist_asked_for_but_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_try_download", lambda data_dir: False)
    with pytest.raises(DataError, match="dataset=sample"):
        data.load_mnist("mnist", str(tmp_path))


def test_full_mnist_on_disk_is_preferred(tmp_path, data_dir, monkeypatch):
    # Lay the sample's IDX files out where full MNIST goes: auto must read them as "mnist".
    sample_raw = data._unpack_sample(data.Path(data_dir)) / "MNIST" / "raw"
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in sample_raw.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    monkeypatch.setattr(data, "_try_download", lambda data_dir: pytest.fail("must not download"))
    assert data.load_mnist("auto", str(tmp_path)).source == "mnist"


def test_unwritable_data_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match="SWEEPKIT_DATA_DIR"):
        data.load_mnist("sample", str(blocker))


def test_a_failed_download_is_not_retried_by_every_run_for_an_hour(tmp_path, monkeypatch):
    tries = []

    def no_network(root, train, download):
        tries.append(root)
        raise OSError("Name or service not known")  # what urllib raises without DNS

    monkeypatch.setattr(data.torchvision.datasets, "MNIST", no_network)
    assert data._try_download(str(tmp_path)) is False
    assert data._try_download(str(tmp_path)) is False
    assert len(tries) == 1 and (tmp_path / data.DOWNLOAD_FAILED_MARKER).exists()
