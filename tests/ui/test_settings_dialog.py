"""The Settings dialog validates with the engine's rules and tests nodes with a real C-ECHO."""

from __future__ import annotations

import pytest
from peers.tools import free_port
from PySide6.QtCore import Qt

from gearview.config import Config, Node, load_config
from gearview.ui.settings_dialog import NodeColumns, SettingsDialog
from gearview.ui.workers import WorkerPool


@pytest.fixture
def pool(qtbot):
    p = WorkerPool()
    yield p
    p.shutdown()


@pytest.fixture
def dialog(qtbot, pool):
    config = Config(nodes=[Node("pacs", "PACS", "127.0.0.1", 104)]).validate()
    dlg = SettingsDialog(config, pool)
    qtbot.addWidget(dlg)
    dlg.show()
    return dlg


def test_valid_defaults_enable_ok(dialog: SettingsDialog):
    assert dialog.valid_config is not None
    assert dialog.ok_button.isEnabled() and dialog.apply_button.isEnabled()
    assert not dialog.summary.isVisible()


def test_ae_title_of_17_characters_is_refused_under_the_field(qtbot, dialog: SettingsDialog):
    dialog.field("server.ae_title").setText("A" * 17)
    message = dialog.field_error("server.ae_title")
    assert message.startswith("AE title:")
    assert "16 characters" in message
    assert not dialog.ok_button.isEnabled() and not dialog.apply_button.isEnabled()
    assert "AE title" in dialog.summary.text()
    dialog.field("server.ae_title").setText("QCSTATION")
    assert dialog.field_error("server.ae_title") == ""
    assert dialog.ok_button.isEnabled()


@pytest.mark.parametrize(
    ("text", "expected"), [("70000", "between 0 and 65535"), ("eleven", "whole number")]
)
def test_bad_port_is_refused_with_a_message_naming_the_field(qtbot, dialog, text, expected):
    dialog.field("server.port").clear()
    qtbot.keyClicks(dialog.field("server.port"), text)
    message = dialog.field_error("server.port")
    assert message.startswith("Port:") and expected in message
    assert not dialog.ok_button.isEnabled()
    with qtbot.assertNotEmitted(dialog.apply_requested):
        assert dialog.apply() is False


def test_other_fields_use_the_engine_rules(dialog: SettingsDialog):
    dialog.field("server.max_pdu").setText("100")
    assert "Max PDU" in dialog.field_error("server.max_pdu")
    dialog.field("server.max_pdu").setText("0")
    dialog.field("server.allowed_calling_aets").setText("MODALITY1, " + "B" * 20)
    assert "Allowed calling AEs" in dialog.field_error("server.allowed_calling_aets")
    dialog.field("server.allowed_calling_aets").setText("MODALITY1, CT2")
    dialog.field("client.network_timeout").setText("-1")
    assert "Network timeout" in dialog.field_error("client.network_timeout")
    dialog.field("client.network_timeout").setText("60")
    assert dialog.valid_config is not None
    assert dialog.valid_config.server.allowed_calling_aets == ["MODALITY1", "CT2"]


def test_node_table_add_edit_remove_with_validation(qtbot, dialog: SettingsDialog):
    row = dialog.add_node()
    assert dialog.node_table.rowCount() == 2
    dialog.set_node_cell(row, NodeColumns.NAME, "pacs")
    assert "two nodes have this name" in dialog.node_error.text()
    assert not dialog.ok_button.isEnabled()
    dialog.set_node_cell(row, NodeColumns.NAME, "archive")
    dialog.set_node_cell(row, NodeColumns.PORT, "99999")
    assert "Node 'archive', Port" in dialog.node_error.text()
    dialog.set_node_cell(row, NodeColumns.PORT, "4242")
    dialog.set_node_cell(row, NodeColumns.ROLES, "query, bogus")
    assert "unknown role" in dialog.node_error.text()
    dialog.set_node_cell(row, NodeColumns.ROLES, "send")
    dialog.node_table.item(row, NodeColumns.TLS).setCheckState(Qt.CheckState.Checked)
    assert dialog.valid_config is not None
    archive = dialog.valid_config.node("archive")
    assert (archive.port, archive.roles, archive.tls) == (4242, ["send"], True)
    dialog.node_table.selectRow(0)
    dialog.remove_selected_nodes()
    assert [n.name for n in dialog.valid_config.nodes] == ["archive"]


def test_apply_emits_the_validated_config(qtbot, dialog: SettingsDialog):
    dialog.field("server.ae_title").setText("QC1")
    dialog.field("server.port").setText("4104")
    with qtbot.waitSignal(dialog.apply_requested) as blocker:
        dialog.apply_button.click()
    config = blocker.args[0]
    assert (config.server.ae_title, config.server.port) == ("QC1", 4104)
    assert dialog.isVisible()
    with qtbot.waitSignal(dialog.apply_requested):
        dialog.ok_button.click()
    assert not dialog.isVisible()


def test_echo_succeeds_against_a_running_server(qtbot, window):
    """Test (C-ECHO) against our own real embedded server shows OK and the round trip."""
    port = window.server.state.port
    config = load_config(window.home)
    config.nodes = [Node("self", config.server.ae_title, "127.0.0.1", port)]
    dlg = SettingsDialog(config.validate(), window.pool)
    qtbot.addWidget(dlg)
    dlg.node_table.cellWidget(0, NodeColumns.TEST).click()
    qtbot.waitUntil(lambda: dlg.node_result(0).startswith("OK"), timeout=15_000)
    assert dlg.node_result(0).endswith("ms")


def test_echo_against_a_closed_port_shows_the_error(qtbot, pool):
    config = Config(nodes=[Node("nobody", "NOBODY", "127.0.0.1", free_port())]).validate()
    config.client.acse_timeout = config.client.network_timeout = 5
    dlg = SettingsDialog(config, pool)
    qtbot.addWidget(dlg)
    dlg.node_table.cellWidget(0, NodeColumns.TEST).click()
    qtbot.waitUntil(lambda: dlg.node_result(0) not in ("", "testing…"), timeout=15_000)
    result = dlg.node_result(0)
    assert not result.startswith("OK")
    assert "nobody" in result.lower() or "refused" in result.lower() or "127.0.0.1" in result
    # The cell elides a long reason; the whole of it (with its hint) is shown under the table.
    assert not dlg.echo_detail.isHidden() and dlg.echo_detail.text() == f"C-ECHO nobody: {result}"
    assert dlg.echo_detail.wordWrap()


def test_echo_of_an_invalid_row_is_not_sent(qtbot, dialog: SettingsDialog):
    dialog.set_node_cell(0, NodeColumns.AE_TITLE, "")
    dialog.node_table.cellWidget(0, NodeColumns.TEST).click()
    assert dialog.node_result(0).startswith("not tested:")
