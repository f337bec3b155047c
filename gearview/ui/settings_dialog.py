"""The Settings dialog: local AE / server, client timeouts, and the remote node table.

Every edit is validated at once by the engine's own rules (`config_from_dict`
raises `ConfigError` naming the key); the message appears under the field
(or under the node table) and OK/Apply are disabled until it is fixed, so the
dialog can never save a config the engine would refuse. Apply emits the new
`Config`; the main window saves it and restarts the server on a worker.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from gearview.config import Config, Node, config_from_dict
from gearview.errors import ConfigError, describe_error
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)

ERROR_STYLE = "color: #c0392b;"
OK_STYLE = "color: #2e8b57;"
NODE_KEY = re.compile(r"^nodes\[(?P<name>[^\]]*)\]\.(?P<field>\w+)$")
LIST_SPLIT = re.compile(r"[,\s]+")

EchoFn = Callable[[Node, Config], float]


def _default_echo(node: Node, config: Config) -> float:
    from gearview.net.client import echo

    return echo(node, config)


@dataclass
class _Field:
    key: str
    label: str
    kind: str  # "str", "int", "float" or "list"
    edit: QLineEdit
    error: QLabel


class NodeColumns:
    NAME, AE_TITLE, HOST, PORT, ROLES, TLS, TEST, RESULT = range(8)
    TITLES = ("Name", "AE title", "Host", "Port", "Roles", "TLS", "", "C-ECHO result")
    FIELDS = {
        "name": NAME,
        "ae_title": AE_TITLE,
        "host": HOST,
        "port": PORT,
        "roles": ROLES,
        "tls": TLS,
    }


class SettingsDialog(QDialog):
    """Edit a copy of the config; `apply_requested(Config)` when the user applies it."""

    apply_requested = Signal(object)

    def __init__(
        self,
        config: Config,
        pool: WorkerPool,
        echo_fn: EchoFn | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setWindowIcon(qta.icon("mdi6.cog"))
        self._base = config.to_dict()
        self._pool = pool
        self._echo = echo_fn or _default_echo
        self._closed = False
        self._fields: dict[str, _Field] = {}
        self.valid_config: Config | None = None
        self.error: ConfigError | None = None

        tabs = QTabWidget(self)
        tabs.addTab(self._server_tab(config), "Local server")
        tabs.addTab(self._nodes_tab(config), "Remote nodes")
        tabs.addTab(self._client_tab(config), "Client")
        self.tabs = tabs

        self.summary = QLabel(self)
        self.summary.setTextFormat(Qt.TextFormat.PlainText)
        self.summary.setStyleSheet(ERROR_STYLE)
        self.summary.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Apply
            | QDialogButtonBox.StandardButton.Cancel,
            self,
        )
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.apply_button = self.buttons.button(QDialogButtonBox.StandardButton.Apply)
        self.ok_button.clicked.connect(self._ok)
        self.apply_button.clicked.connect(self.apply)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        self.resize(880, 540)
        self.validate()

    # ---- building ---------------------------------------------------------------

    def _add_field(
        self,
        form: QFormLayout,
        key: str,
        label: str,
        kind: str,
        value: Any,
        tip: str = "",
        trailing: QWidget | None = None,
    ) -> QLineEdit:
        edit = QLineEdit(self._format(value, kind))
        edit.setObjectName(key)
        edit.setToolTip(tip)
        error = QLabel()
        error.setTextFormat(Qt.TextFormat.PlainText)
        error.setStyleSheet(ERROR_STYLE)
        error.setWordWrap(True)
        error.setVisible(False)
        error.setObjectName(f"{key}.error")
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(1)
        row = QHBoxLayout()
        row.addWidget(edit)
        if trailing is not None:
            row.addWidget(trailing)
        column.addLayout(row)
        column.addWidget(error)
        form.addRow(label, box)
        self._fields[key] = _Field(key, label, kind, edit, error)
        edit.textChanged.connect(self.validate)
        return edit

    @staticmethod
    def _format(value: Any, kind: str) -> str:
        if kind == "list":
            return ", ".join(value)
        if kind == "float":
            return f"{value:g}"
        return str(value)

    def _server_tab(self, config: Config) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        server = config.server
        self._add_field(
            form,
            "server.ae_title",
            "AE title",
            "str",
            server.ae_title,
            "This station's Application Entity title (1–16 characters)",
        )
        self._add_field(
            form,
            "server.port",
            "Port",
            "int",
            server.port,
            "TCP port the embedded DICOM server listens on",
        )
        browse = QPushButton(qta.icon("mdi6.folder-open"), "Browse…")
        browse.clicked.connect(self._browse_storage)
        storage = self._add_field(
            form,
            "storage.folder",
            "Storage folder",
            "str",
            config.storage.folder,
            "Where received images are kept (empty: inside the gearview home folder). "
            "A change takes effect when gearview is restarted.",
            trailing=browse,
        )
        storage.setPlaceholderText("default: the files folder inside the gearview home folder")
        self._add_field(
            form,
            "server.max_associations",
            "Max associations",
            "int",
            server.max_associations,
            "Simultaneous associations accepted",
        )
        self._add_field(
            form,
            "server.max_pdu",
            "Max PDU (bytes)",
            "int",
            server.max_pdu,
            "Largest PDU we receive; 0 means unlimited",
        )
        self._add_field(
            form, "server.acse_timeout", "ACSE timeout (s)", "float", server.acse_timeout
        )
        self._add_field(
            form, "server.dimse_timeout", "DIMSE timeout (s)", "float", server.dimse_timeout
        )
        self._add_field(
            form, "server.network_timeout", "Network timeout (s)", "float", server.network_timeout
        )
        self._add_field(
            form,
            "server.allowed_calling_aets",
            "Allowed calling AEs",
            "list",
            server.allowed_calling_aets,
            "Comma-separated AE titles allowed to connect; empty accepts any",
        )
        return page

    def _client_tab(self, config: Config) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        client = config.client
        self._add_field(
            form, "client.acse_timeout", "ACSE timeout (s)", "float", client.acse_timeout
        )
        self._add_field(
            form, "client.dimse_timeout", "DIMSE timeout (s)", "float", client.dimse_timeout
        )
        self._add_field(
            form, "client.network_timeout", "Network timeout (s)", "float", client.network_timeout
        )
        self._add_field(form, "client.max_pdu", "Max PDU (bytes)", "int", client.max_pdu)
        self.default_destination = QComboBox()
        self.default_destination.setObjectName("client.default_send_destination")
        self._default_destination_value = client.default_send_destination
        self.default_destination.currentIndexChanged.connect(self.validate)
        form.addRow("Default send destination", self.default_destination)
        return page

    def _nodes_tab(self, config: Config) -> QWidget:
        page = QWidget()
        self.node_table = QTableWidget(0, len(NodeColumns.TITLES), page)
        self.node_table.setHorizontalHeaderLabels(NodeColumns.TITLES)
        self.node_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.node_table.verticalHeader().hide()
        self.node_table.setWordWrap(False)
        self.node_table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.node_table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for node in config.nodes:
            self._append_node_row(node)
        self.node_table.itemChanged.connect(self._node_item_changed)

        add = QPushButton(qta.icon("mdi6.plus"), "Add node")
        add.clicked.connect(self.add_node)
        remove = QPushButton(qta.icon("mdi6.minus"), "Remove")
        remove.clicked.connect(self.remove_selected_nodes)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        self.node_error = QLabel(page)
        self.node_error.setTextFormat(Qt.TextFormat.PlainText)
        self.node_error.setStyleSheet(ERROR_STYLE)
        self.node_error.setWordWrap(True)
        self.node_error.setVisible(False)
        # The result column is too narrow for a failure's reason and hint: the whole text of
        # the last test (or of the selected node's) shows here, wrapped.
        self.echo_detail = QLabel(page)
        self.echo_detail.setObjectName("echo_detail")
        self.echo_detail.setTextFormat(Qt.TextFormat.PlainText)
        self.echo_detail.setWordWrap(True)
        self.echo_detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.echo_detail.setVisible(False)
        self.node_table.currentCellChanged.connect(lambda row, *_: self._show_echo_detail(row))
        hint = QLabel(
            "Double-click a cell to edit. Roles: query, retrieve, send, get, commit.", page
        )
        hint.setStyleSheet("color: gray;")
        layout = QVBoxLayout(page)
        layout.addWidget(self.node_table)
        layout.addWidget(self.node_error)
        layout.addWidget(self.echo_detail)
        layout.addLayout(buttons)
        layout.addWidget(hint)
        return page

    def _append_node_row(self, node: Node) -> int:
        table = self.node_table
        table.blockSignals(True)
        row = table.rowCount()
        table.insertRow(row)
        values = {
            NodeColumns.NAME: node.name,
            NodeColumns.AE_TITLE: node.ae_title,
            NodeColumns.HOST: node.host,
            NodeColumns.PORT: str(node.port),
            NodeColumns.ROLES: ", ".join(node.roles),
        }
        for column, text in values.items():
            table.setItem(row, column, QTableWidgetItem(text))
        tls = QTableWidgetItem()
        tls.setFlags(
            Qt.ItemFlag.ItemIsUserCheckable
            | Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
        )
        tls.setCheckState(Qt.CheckState.Checked if node.tls else Qt.CheckState.Unchecked)
        table.setItem(row, NodeColumns.TLS, tls)
        result = QTableWidgetItem("")
        result.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        table.setItem(row, NodeColumns.RESULT, result)
        button = QPushButton(qta.icon("mdi6.lan-pending"), "Test (C-ECHO)")
        button.setToolTip("Send a C-ECHO to this node with the settings shown")
        button.clicked.connect(lambda: self.test_node(self._row_of_button(button)))
        table.setCellWidget(row, NodeColumns.TEST, button)
        table.blockSignals(False)
        return row

    def _row_of_button(self, button: QPushButton) -> int:
        for row in range(self.node_table.rowCount()):
            if self.node_table.cellWidget(row, NodeColumns.TEST) is button:
                return row
        return -1

    # ---- node table actions ---------------------------------------------------

    def add_node(self) -> int:
        taken = {self._cell(r, NodeColumns.NAME).lower() for r in range(self.node_table.rowCount())}
        number = 1
        while f"node{number}" in taken:
            number += 1
        row = self._append_node_row(
            Node(name=f"node{number}", ae_title="ANY-SCP", host="127.0.0.1", port=104)
        )
        self.node_table.setCurrentCell(row, NodeColumns.NAME)
        self.validate()
        return row

    def remove_selected_nodes(self) -> None:
        rows = sorted({i.row() for i in self.node_table.selectedIndexes()}, reverse=True)
        for row in rows:
            self.node_table.removeRow(row)
        self.validate()

    def set_node_cell(self, row: int, column: int, text: str) -> None:
        """Edit a node cell as a user would (tests use this)."""
        self.node_table.item(row, column).setText(text)

    def _node_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != NodeColumns.RESULT:
            self.validate()

    def _cell(self, row: int, column: int) -> str:
        item = self.node_table.item(row, column)
        return item.text().strip() if item is not None else ""

    def _node_from_row(self, row: int) -> dict[str, Any]:
        name = self._cell(row, NodeColumns.NAME)
        port_text = self._cell(row, NodeColumns.PORT)
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(
                f"nodes[{name or '?'}].port", f"must be a whole number, got {port_text!r}"
            ) from None
        tls_item = self.node_table.item(row, NodeColumns.TLS)
        return {
            "name": name,
            "ae_title": self._cell(row, NodeColumns.AE_TITLE),
            "host": self._cell(row, NodeColumns.HOST),
            "port": port,
            "roles": [r for r in LIST_SPLIT.split(self._cell(row, NodeColumns.ROLES)) if r],
            "tls": tls_item is not None and tls_item.checkState() == Qt.CheckState.Checked,
        }

    def test_node(self, row: int) -> None:
        """C-ECHO the node of `row` on a worker; the result shows in its row."""
        if row < 0:
            return
        try:
            node = Node(**self._node_from_row(row))
            node.validate()
        except ConfigError as exc:
            self._set_result(row, f"not tested: {exc.reason}", ok=False)
            return
        config = self.valid_config or config_from_dict(copy.deepcopy(self._base))
        self._set_result(row, "testing…", ok=None)
        button = self.node_table.cellWidget(row, NodeColumns.TEST)
        button.setEnabled(False)
        self._pool.submit(
            self._echo,
            node,
            config,
            on_result=lambda seconds: self._echo_done(
                button, f"OK · {seconds * 1000:.0f} ms", True
            ),
            on_error=lambda exc: self._echo_done(button, describe_error(exc), False),
        )

    def _echo_done(self, button: QPushButton, text: str, ok: bool) -> None:
        if self._closed:
            return
        row = self._row_of_button(button)
        button.setEnabled(True)
        if row >= 0:
            self._set_result(row, text, ok)

    def _set_result(self, row: int, text: str, ok: bool | None) -> None:
        item = self.node_table.item(row, NodeColumns.RESULT)
        self.node_table.blockSignals(True)
        item.setText(text)
        item.setToolTip(text)
        icon = {
            True: qta.icon("mdi6.check-circle", color="#2e8b57"),
            False: qta.icon("mdi6.alert-circle", color="#c0392b"),
            None: qta.icon("mdi6.lan-pending", color="gray"),
        }[ok]
        item.setIcon(icon)
        if ok is not None:
            item.setForeground(QColor("#2e8b57" if ok else "#c0392b"))
        item.setData(Qt.ItemDataRole.UserRole, ok)
        self.node_table.blockSignals(False)
        self._show_echo_detail(row)

    def _show_echo_detail(self, row: int) -> None:
        """The full C-ECHO result of `row` under the table (none when it was not tested)."""
        item = self.node_table.item(row, NodeColumns.RESULT) if row >= 0 else None
        text = item.text() if item is not None else ""
        self.echo_detail.setVisible(bool(text))
        if not text:
            return
        ok = item.data(Qt.ItemDataRole.UserRole)
        self.echo_detail.setStyleSheet(
            "" if ok is None else (OK_STYLE if ok else ERROR_STYLE)
        )
        self.echo_detail.setText(f"C-ECHO {self._cell(row, NodeColumns.NAME)}: {text}")

    def node_result(self, row: int) -> str:
        return self._cell(row, NodeColumns.RESULT)

    # ---- validation -------------------------------------------------------------

    def _browse_storage(self) -> None:
        edit = self._fields["storage.folder"].edit
        folder = QFileDialog.getExistingDirectory(self, "Storage folder", edit.text())
        if folder:
            edit.setText(folder)

    def field(self, key: str) -> QLineEdit:
        return self._fields[key].edit

    def field_error(self, key: str) -> str:
        label = self._fields[key].error
        return "" if label.isHidden() else label.text()

    def _collect(self) -> dict[str, Any]:
        data = copy.deepcopy(self._base)
        for key, fld in self._fields.items():
            section, name = key.split(".")
            text = (
                fld.edit.text().strip()
                if fld.kind != "str" or name != "ae_title"
                else fld.edit.text()
            )
            data[section][name] = self._parse(key, text, fld.kind)
        data["nodes"] = [self._node_from_row(r) for r in range(self.node_table.rowCount())]
        data["client"]["default_send_destination"] = self.default_destination.currentData() or ""
        return data

    @staticmethod
    def _parse(key: str, text: str, kind: str) -> Any:
        if kind == "int":
            try:
                return int(text)
            except ValueError:
                raise ConfigError(key, f"must be a whole number, got {text!r}") from None
        if kind == "float":
            try:
                return float(text)
            except ValueError:
                raise ConfigError(key, f"must be a number, got {text!r}") from None
        if kind == "list":
            return [item for item in LIST_SPLIT.split(text) if item]
        return text

    def _refresh_destinations(self) -> None:
        names = [self._cell(r, NodeColumns.NAME) for r in range(self.node_table.rowCount())]
        current = self.default_destination.currentData()
        if current is None:
            current = self._default_destination_value
        combo = self.default_destination
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("(none)", "")
        for name in names:
            if name:
                combo.addItem(name, name)
        combo.setCurrentIndex(max(combo.findData(current), 0))
        combo.blockSignals(False)

    def validate(self) -> bool:
        """Check the whole form with the engine's rules; show the first problem where it is."""
        self._refresh_destinations()
        for fld in self._fields.values():
            fld.error.setVisible(False)
        self.node_error.setVisible(False)
        self._mark_node_rows("")
        try:
            self.valid_config = config_from_dict(self._collect())
            self.error = None
        except ConfigError as exc:
            self.valid_config = None
            self.error = exc
            self._show_error(exc)
        ok = self.valid_config is not None
        self.ok_button.setEnabled(ok)
        self.apply_button.setEnabled(ok)
        self.summary.setVisible(not ok)
        return ok

    def _show_error(self, exc: ConfigError) -> None:
        fld = self._fields.get(exc.key) or self._fields.get(exc.key.split("[")[0])
        if fld is not None:
            text = f"{fld.label}: {exc.reason}"
            fld.error.setText(text)
            fld.error.setVisible(True)
            self.summary.setText(f"Fix before saving — {text}")
            return
        match = NODE_KEY.match(exc.key)
        if match:
            column = NodeColumns.FIELDS.get(match["field"])
            title = NodeColumns.TITLES[column] if column is not None else match["field"]
            text = f"Node {match['name']!r}, {title}: {exc.reason}"
            self._mark_node_rows(match["name"])
        elif exc.key.startswith("client.default_send_destination"):
            text = f"Default send destination: {exc.reason}"
        else:
            text = f"{exc.key}: {exc.reason}"
        self.node_error.setText(text)
        self.node_error.setVisible(True)
        self.summary.setText(f"Fix before saving — {text}")

    def _mark_node_rows(self, name: str) -> None:
        table = self.node_table
        table.blockSignals(True)
        for row in range(table.rowCount()):
            item = table.item(row, NodeColumns.NAME)
            bad = bool(name) and item is not None and item.text().strip() == name
            if item is not None:
                item.setIcon(qta.icon("mdi6.alert-circle", color="#c0392b") if bad else QIcon())
        table.blockSignals(False)

    # ---- buttons ----------------------------------------------------------------

    def apply(self) -> bool:
        """Emit the validated config for saving; False (nothing emitted) when invalid."""
        if not self.validate() or self.valid_config is None:
            return False
        self._base = self.valid_config.to_dict()
        self.apply_requested.emit(self.valid_config)
        return True

    def _ok(self) -> None:
        if self.apply():
            self.accept()

    def done(self, result: int) -> None:
        self._closed = True
        super().done(result)
