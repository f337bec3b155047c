"""The element tree widget shared by the tag editor and the viewer's Tags dock.

It shows `edit.tags.TagNode`s (built on a worker from the instance), one row
per element with its sequences nested; each item keeps its node for the
caller. With `grey_read_only`, elements the editor cannot change are greyed.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QTreeWidgetItemIterator, QWidget

from gearview.edit.tags import TagNode

COLUMNS = ("Tag", "Name", "VR", "Value", "Private creator")
NODE_ROLE = Qt.ItemDataRole.UserRole + 1
READ_ONLY = QBrush(QColor(128, 128, 128))


class TagTree(QTreeWidget):
    """A tree of TagNodes; `node(item)` gives an item's node back."""

    def __init__(self, parent: QWidget | None = None, grey_read_only: bool = False) -> None:
        super().__init__(parent)
        self._grey_read_only = grey_read_only
        self.setHeaderLabels(list(COLUMNS))
        self.setUniformRowHeights(True)

    def show_nodes(self, nodes: list[TagNode]) -> None:
        self.clear()
        self.addTopLevelItems([self._item(node) for node in nodes])
        self.resizeColumnToContents(0)

    def _item(self, node: TagNode) -> QTreeWidgetItem:
        item = QTreeWidgetItem([node.tag, node.name, node.vr, node.value, node.private_creator])
        item.setData(0, NODE_ROLE, node)
        if self._grey_read_only and not node.editable:
            for column in range(len(COLUMNS)):
                item.setForeground(column, READ_ONLY)
            if node.private_creator:
                item.setToolTip(3, f"private ({node.private_creator}): read-only")
        item.addChildren([self._item(child) for child in node.children])
        return item

    @staticmethod
    def node(item: QTreeWidgetItem) -> TagNode:
        return item.data(0, NODE_ROLE)

    def items(self) -> list[QTreeWidgetItem]:
        """Every item, depth first."""
        found = []
        iterator = QTreeWidgetItemIterator(self)
        while iterator.value():
            found.append(iterator.value())
            iterator += 1
        return found

    def find_item(self, keyword: str) -> QTreeWidgetItem | None:
        return next((i for i in self.items() if self.node(i).keyword == keyword), None)
