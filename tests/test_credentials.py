import pytest

from sweepkit.credentials import use_wandb_server, wandb_credentials_configured


@pytest.fixture
def netrc_file(tmp_path, monkeypatch):
    path = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(path))
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    return path


@pytest.mark.parametrize("host", ["api.wandb.ai", "api.forge.coreweave.com"])
def test_wandb_login_entries_count_for_the_default_server(netrc_file, host):
    netrc_file.write_text(f"machine {host}\n  login user\n  password {'a' * 40}\n")
    assert wandb_credentials_configured()


def test_a_self_hosted_server_needs_its_own_entry(netrc_file, monkeypatch):
    netrc_file.write_text(f"machine api.wandb.ai\n  login user\n  password {'a' * 40}\n")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.internal")
    assert not wandb_credentials_configured()
    netrc_file.write_text(f"machine wandb.example.internal\n  login user\n  password {'b' * 40}\n")
    assert wandb_credentials_configured()


def test_no_netrc_and_no_key_means_no_credentials(netrc_file):
    assert not wandb_credentials_configured()


def test_offline_mode_keeps_sweeps_local_even_with_a_key(monkeypatch, netrc_file):
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_credentials_configured() and not use_wandb_server()
    monkeypatch.setenv("WANDB_MODE", "online")
    assert use_wandb_server()
