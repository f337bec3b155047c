"""Configuration: defaults, validation naming the key, atomic save and reload."""

from __future__ import annotations

import pytest

from gearview.config import Config, config_from_dict, load_config, save_config
from gearview.errors import ConfigError
from gearview.home import Home


def test_defaults_match_spec(home: Home) -> None:
    config = load_config(home)
    assert config.server.max_associations == 20
    assert config.server.max_pdu == 524288
    assert config.server.allowed_calling_aets == []
    assert config.storage_dir(home) == home.root / "files"


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"server": {"ae_title": "A" * 17}}, "server.ae_title", "at most 16"),
        ({"server": {"ae_title": "BAD\\AE"}}, "server.ae_title", "backslash"),
        ({"server": {"ae_title": "BAD\x01"}}, "server.ae_title", "control"),
        ({"server": {"ae_title": "   "}}, "server.ae_title", "empty"),
        ({"server": {"port": 70000}}, "server.port", "between"),
        ({"server": {"port": "104"}}, "server.port", "whole number"),
        ({"server": {"max_associations": 0}}, "server.max_associations", "between"),
        ({"server": {"max_pdu": 100}}, "server.max_pdu", "4096"),
        ({"server": {"acse_timeout": -1}}, "server.acse_timeout", "greater than 0"),
        ({"server": {"prot": 104}}, "server.prot", "unknown setting"),
        (
            {"server": {"accepted_transfer_syntaxes": ["1.2.3"]}},
            "server.accepted_transfer_syntaxes",
            "unsupported",
        ),
        (
            {"server": {"accepted_sop_classes": ["1.2.3"]}},
            "server.accepted_sop_classes",
            "not a storage",
        ),
        ({"server": {"tls": {"enabled": True}}}, "server.tls.cert", "required"),
        ({"nodes": [{"name": "P", "ae_title": "X", "host": "h"}]}, "nodes[0].port", "required"),
        (
            {"nodes": [{"name": "P", "ae_title": "X", "host": "h", "port": 1, "roles": ["fly"]}]},
            "nodes[P].roles",
            "unknown role",
        ),
        (
            {
                "nodes": [
                    {"name": "P", "ae_title": "X", "host": "h", "port": 1},
                    {"name": "p", "ae_title": "Y", "host": "h", "port": 2},
                ]
            },
            "nodes[p].name",
            "two nodes",
        ),
        (
            {"client": {"default_send_destination": "NOPE"}},
            "client.default_send_destination",
            "no node",
        ),
    ],
)
def test_bad_values_are_refused_naming_the_key(data: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert info.value.key == key
    assert reason in info.value.reason
    assert key in str(info.value)


def test_save_and_reload_round_trip(home: Home) -> None:
    config = config_from_dict(
        {
            "server": {
                "ae_title": "QCSTATION",
                "port": 4104,
                "allowed_calling_aets": ["CT1", "MR2"],
            },
            "nodes": [
                {
                    "name": "PACS",
                    "ae_title": "ORTHANC",
                    "host": "127.0.0.1",
                    "port": 4242,
                    "roles": ["query", "retrieve"],
                }
            ],
            "client": {"default_send_destination": "PACS"},
        }
    )
    save_config(home, config)
    assert home.config_file.stat().st_mode & 0o777 == 0o600
    again = load_config(home)
    assert again == config
    assert not list(home.root.glob(".config-*")), "temporary file left behind"


def test_hand_edited_file_with_typo_is_refused(home: Home) -> None:
    home.config_file.write_text('[server]\nae_titel = "X"\n')
    with pytest.raises(ConfigError, match="server.ae_titel: unknown setting"):
        load_config(home)


def test_broken_toml_is_refused_with_the_file_named(home: Home) -> None:
    home.config_file.write_text("[server\nport = 1\n")
    with pytest.raises(ConfigError, match="config.toml"):
        load_config(home)


def test_save_refuses_invalid_config_and_keeps_the_old_file(home: Home) -> None:
    save_config(home, Config())
    before = home.config_file.read_bytes()
    bad = Config()
    bad.server.port = -5
    with pytest.raises(ConfigError):
        save_config(home, bad)
    assert home.config_file.read_bytes() == before


def test_example_config_in_resources_loads_with_defaults() -> None:
    from pathlib import Path

    import tomllib

    example = Path(__file__).parents[2] / "resources" / "config.example.toml"
    config = config_from_dict(tomllib.loads(example.read_text()))
    assert config.server == Config().server
    assert config.storage == Config().storage
    assert [n.name for n in config.nodes] == ["PACS"]


def test_spool_topdir_flag_is_opt_in_and_must_be_true_or_false() -> None:
    """gearview sets no file system flag on the user's folders unless the config asks."""
    assert Config().storage.set_spool_topdir_flag is False
    asked = config_from_dict({"storage": {"set_spool_topdir_flag": True}})
    assert asked.storage.set_spool_topdir_flag is True
    with pytest.raises(ConfigError, match=r"storage\.set_spool_topdir_flag: must be true or false"):
        config_from_dict({"storage": {"set_spool_topdir_flag": "yes"}})
