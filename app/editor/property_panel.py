"""The properties panel: widgets generated from the node type's parameter declaration.

One editor class per :class:`compute.Param` kind (a 3-int vector editor for ``int3``, a combo box for
``choice``, a check box for ``bool``, bounded spin boxes for ``int``...); parameters are grouped by
their ``group`` and clusters get their own box. Every edit goes through
:meth:`app.canvas.Canvas.set_param`: a refused value leaves the document untouched, the editor goes
back to the last good value and the field shows the message. Edits are undoable.
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeVar

from PySide6.QtCore import QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.compute import Param
from conv3dt_studio.nodes import NODE_TYPES

from .canvas import Canvas, display_name

INT_LIMIT = 2**31 - 1
LIST_SEPARATORS = r"[,;x×\s()\[\]]+"  # between the numbers of a typed or pasted list
GROUP_TITLES = {
    "layer": "Layer",
    "optimizer": "Optimizer",
    "initializers": "Initializers",
    "training": "Training",
    "source": "Source",
    "generator": "Generator",
    "file": "File",
    "loss": "Loss settings",
}


def tooltip(param: Param) -> str:
    return f"{param.help}\nAllowed: {param.describe()}"


class Editor(QWidget):
    """Base of the per-kind editors: ``edited`` carries the user's new value."""

    edited = Signal(object)

    def __init__(self, param: Param) -> None:
        super().__init__()
        self.param = param
        self.setToolTip(tooltip(param))
        self.setObjectName(f"param_{param.name}")

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self):
            self._show(value)

    def _show(self, value: Any) -> None:  # pragma: no cover - every kind overrides it
        raise NotImplementedError


SpinT = TypeVar("SpinT", bound=QSpinBox)


def _spin(param: Param, minimum: float | None = None, kind: type[SpinT] = QSpinBox) -> SpinT:
    spin = kind()
    lo = param.minimum if minimum is None else minimum
    lo = -INT_LIMIT if lo is None else int(lo) + (1 if param.exclusive_minimum else 0)
    spin.setRange(lo, INT_LIMIT if param.maximum is None else int(param.maximum))
    spin.setKeyboardTracking(False)  # one edit per finished number, not per keystroke
    spin.setAccelerated(True)
    spin.setToolTip(tooltip(param))
    return spin


class IntEditor(Editor):
    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.spin = _spin(param)
        _single(self, self.spin)
        self.spin.valueChanged.connect(self.edited.emit)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.spin):
            if isinstance(value, int) and not isinstance(value, bool):
                # a damaged file may hold any integer: show it clamped (the node reports it)
                self.spin.setValue(max(self.spin.minimum(), min(self.spin.maximum(), value)))


class FloatEditor(Editor):
    """A text field (floats like 1e-7 do not fit a spin box's fixed decimals)."""

    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.line = QLineEdit()
        _single(self, self.line)
        self.line.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        text = self.line.text().strip()
        try:
            value: Any = float(text)
        except ValueError:
            value = text  # the schema names the problem
        self.edited.emit(value)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.line):
            self.line.setText(repr(value) if isinstance(value, float) else str(value))


class StrEditor(Editor):
    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.line = QLineEdit()
        self.line.setPlaceholderText("(empty)")
        _single(self, self.line)
        self.line.editingFinished.connect(lambda: self.edited.emit(self.line.text()))

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.line):
            self.line.setText(str(value))


class BoolEditor(Editor):
    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.check = QCheckBox()
        _single(self, self.check)
        self.check.toggled.connect(self.edited.emit)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.check):
            self.check.setChecked(bool(value))


class ChoiceEditor(Editor):
    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.combo = QComboBox()
        self.combo.addItems(list(param.choices))
        _single(self, self.combo)
        self.combo.currentTextChanged.connect(self.edited.emit)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.combo):
            index = self.combo.findText(str(value)) if isinstance(value, str) else -1
            self.combo.setCurrentIndex(index)  # -1: blank for a damaged value, never a wrong one


def split_list(text: str) -> list[str]:
    """'3, 3, 3' / '3x3x3' / '[3 3 3]' -> ['3', '3', '3']."""
    return [p for p in re.split(LIST_SEPARATORS, text) if p]


class ListSpinBox(QSpinBox):
    """A spin box that keeps a typed or pasted list ('3,3,3,3') instead of dropping its
    separators (a plain QSpinBox turns it into 3333): Enter or leaving the box hands the text
    on as ``list_entered``, for the three boxes to fill or the schema to refuse."""

    list_entered = Signal(str)

    def list_text(self, text: str | None = None) -> str | None:
        """The current (or given) text without the prefix when it holds separators (a list
        being typed: '3, ' too), else None."""
        text = self.lineEdit().text() if text is None else text
        if text.startswith(self.prefix()):
            text = text[len(self.prefix()) :]
        text = text.lstrip()
        return text if re.search(LIST_SEPARATORS, text) and split_list(text) else None

    def validate(self, text: str, pos: int) -> object:  # noqa: D102 - Qt's hook
        if self.list_text(text) is not None:
            return QValidator.State.Intermediate, text, pos
        return super().validate(text, pos)

    def _hand_on(self) -> bool:
        text = self.list_text()
        if text is None:
            return False
        parts = split_list(text)
        self.lineEdit().setText(self.prefix() + self.textFromValue(self.value()))
        if len(parts) == 1 and parts[0].isdigit() and int(parts[0]) <= self.maximum():
            self.setValue(max(self.minimum(), int(parts[0])))  # '5 ': just this axis
        else:
            self.list_entered.emit(text)
        return True

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._hand_on():
            event.accept()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        self._hand_on()
        super().focusOutEvent(event)


class Int3Editor(Editor):
    """Three spin boxes (depth, height, width); a nullable one has a 'set' check box. A list
    typed or pasted into any box fills the three ('3, 3, 3'); any other list goes to the schema,
    whose refusal shows under the field."""

    AXES = ("d", "h", "w")

    def __init__(self, param: Param) -> None:
        super().__init__(param)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.enabled: QCheckBox | None = None
        if param.nullable:
            self.enabled = QCheckBox("set")
            self.enabled.setToolTip("Unchecked: None (inferred)")
            self.enabled.toggled.connect(self._on_enabled)
            row.addWidget(self.enabled)
        self.spins: list[ListSpinBox] = []
        for axis in self.AXES:
            spin = _spin(param, 0 if param.minimum is None else param.minimum, ListSpinBox)
            spin.setPrefix(f"{axis} ")
            spin.setMinimumWidth(64)
            spin.valueChanged.connect(self._commit)
            spin.list_entered.connect(self._commit_list)
            row.addWidget(spin)
            self.spins.append(spin)

    def value(self) -> list[int] | None:
        if self.enabled is not None and not self.enabled.isChecked():
            return None
        return [s.value() for s in self.spins]

    def _on_enabled(self, on: bool) -> None:
        for s in self.spins:
            s.setEnabled(on)
        self._commit()

    def _commit(self) -> None:
        self.edited.emit(self.value())

    def _commit_list(self, text: str) -> None:
        parts = split_list(text)
        try:
            value: Any = [int(p) for p in parts]
        except ValueError:
            value = text  # the schema names the problem
        if isinstance(value, list) and len(value) == len(self.spins):
            fits = all(s.minimum() <= v <= s.maximum() for s, v in zip(self.spins, value))
            if fits:
                for spin, v in zip(self.spins, value):
                    with QSignalBlocker(spin):
                        spin.setValue(v)
        self.edited.emit(value)

    def _show(self, value: Any) -> None:
        blockers = [QSignalBlocker(w) for w in (*self.spins, self.enabled) if w is not None]
        if isinstance(value, int):
            value = [value] * 3
        if self.enabled is not None:
            self.enabled.setChecked(value is not None)
        for spin, v in zip(self.spins, value or [0, 0, 0]):
            spin.setEnabled(value is not None)
            if isinstance(v, int) and not isinstance(v, bool):
                spin.setValue(max(spin.minimum(), min(spin.maximum(), v)))
        del blockers


class ShapeEditor(Editor):
    """A tensor shape typed as '6, 5, 64, 64, 3' (× and x separators accepted)."""

    def __init__(self, param: Param) -> None:
        super().__init__(param)
        self.line = QLineEdit()
        self.line.setPlaceholderText("e.g. 6, 5, 64, 64, 3")
        _single(self, self.line)
        self.line.editingFinished.connect(self._commit)

    def _commit(self) -> None:
        try:
            value: Any = [int(p) for p in split_list(self.line.text())]
        except ValueError:
            value = self.line.text()
        self.edited.emit(value)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.line):
            if isinstance(value, (list, tuple)):
                self.line.setText(", ".join(str(v) for v in value))
            else:
                self.line.setText(str(value))


class ClusterEditor(Editor):
    """A nested schema (the optimizer cluster): one editor per field; emits the whole dict."""

    def __init__(self, param: Param) -> None:
        super().__init__(param)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, Editor] = {}
        self.current: dict[str, Any] = {}
        for sub in param.fields:
            ed = make_editor(sub)
            ed.edited.connect(lambda v, name=sub.name: self._commit(name, v))
            self.fields[sub.name] = ed
            label = QLabel(sub.name)
            label.setToolTip(tooltip(sub))
            form.addRow(label, ed)

    def _commit(self, name: str, value: Any) -> None:
        self.edited.emit({**self.current, name: value})

    def _show(self, value: Any) -> None:
        defaults = self.param.fields.to_json(self.param.fields.defaults())
        self.current = {**defaults, **(value if isinstance(value, dict) else {})}
        for name, ed in self.fields.items():
            ed.set_value(self.current.get(name))


EDITORS: dict[str, type[Editor]] = {
    "int": IntEditor,
    "float": FloatEditor,
    "str": StrEditor,
    "bool": BoolEditor,
    "choice": ChoiceEditor,
    "int3": Int3Editor,
    "shape": ShapeEditor,
    "cluster": ClusterEditor,
}


def make_editor(param: Param) -> Editor:
    return EDITORS[param.kind](param)


def _single(owner: QWidget, widget: QWidget) -> None:
    layout = QHBoxLayout(owner)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(widget)
    widget.setToolTip(owner.toolTip())


class Field(QWidget):
    """An editor with its error line underneath."""

    def __init__(self, editor: Editor) -> None:
        super().__init__()
        self.editor = editor
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(editor)
        self.error = QLabel()
        self.error.setObjectName("field_error")
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        box.addWidget(self.error)

    def show_error(self, text: str | None) -> None:
        self.error.setText(text or "")
        self.error.setVisible(bool(text))
        self.editor.setProperty("invalid", bool(text))
        self.editor.style().unpolish(self.editor)
        self.editor.style().polish(self.editor)


class PropertyPanel(QScrollArea):
    """Shows and edits the selected node's parameters."""

    def __init__(self, canvas: Canvas) -> None:
        super().__init__()
        self.setObjectName("properties_panel_view")
        self.setWidgetResizable(True)
        self.setMinimumWidth(400)
        self.canvas = canvas
        self.node_id: str | None = None
        self.fields: dict[str, Field] = {}
        self._build_empty()
        canvas.selection_changed.connect(self.show_node)
        canvas.document_changed.connect(self.refresh)

    # ------------------------------------------------------------------ building
    def _build_empty(self) -> None:
        body = QWidget()
        box = QVBoxLayout(body)
        hint = QLabel("Select a node to edit its parameters.")
        hint.setObjectName("panel_hint")
        hint.setWordWrap(True)
        box.addWidget(hint)
        box.addStretch(1)
        self.fields = {}
        self.groups = {}
        self.title = hint
        self.problems = QLabel()
        self.setWidget(body)

    def show_node(self, node_id: str | None) -> None:
        if node_id == self.node_id and node_id is not None:
            return
        self.node_id = node_id if node_id in self.canvas.doc.nodes else None
        if self.node_id is None:
            self._build_empty()
            return
        node = self.canvas.doc.nodes[self.node_id]
        nt = NODE_TYPES.get(node.type)
        body = QWidget()
        box = QVBoxLayout(body)
        self.title = QLabel(f"<b>{display_name(node)}</b> <span>[{node.id}]</span>")
        self.title.setObjectName("panel_title")
        box.addWidget(self.title)
        if nt is not None:
            help_label = QLabel(nt.help)
            help_label.setObjectName("panel_help")
            help_label.setWordWrap(True)
            box.addWidget(help_label)
        self.problems = QLabel()
        self.problems.setObjectName("panel_problems")
        self.problems.setWordWrap(True)
        box.addWidget(self.problems)
        self.fields = {}
        self.groups: dict[str, QGroupBox] = {}
        for group, params in nt.schema.groups().items() if nt else []:
            for cluster in [p for p in params if p.kind == "cluster"]:
                box.addWidget(self._group(cluster.name.replace("_", " ").title(), [cluster]))
            plain = [p for p in params if p.kind != "cluster"]
            if plain:
                self.groups[group] = self._group(GROUP_TITLES.get(group, group.title()), plain)
                box.addWidget(self.groups[group])
        box.addStretch(1)
        self.setWidget(body)
        self.refresh()

    def _group(self, title: str, params: list[Param]) -> QGroupBox:
        group = QGroupBox(title)
        form = QFormLayout(group)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for p in params:
            field = Field(make_editor(p))
            field.editor.edited.connect(lambda v, name=p.name: self.edit(name, v))
            self.fields[p.name] = field
            if p.kind == "cluster":
                form.addRow(field)
            else:
                label = QLabel(p.name)
                label.setToolTip(tooltip(p))
                form.addRow(label, field)
        return group

    # ------------------------------------------------------------------ values
    def refresh(self) -> None:
        """Show the document's values (after undo, redo, or another edit)."""
        if self.node_id is not None and self.node_id not in self.canvas.doc.nodes:
            self.show_node(self.canvas.selected_id())
            return
        if self.node_id is None:
            return
        node = self.canvas.doc.nodes[self.node_id]
        nt = NODE_TYPES.get(node.type)
        values = nt.schema.to_json(nt.schema.defaults()) if nt else {}
        values.update(node.params)
        for name, field in self.fields.items():
            field.editor.set_value(copy.deepcopy(values.get(name)))
        if "source" in values:  # Data / Target: only the chosen source's settings apply
            teacher = values["source"] == "teacher"
            for group in ("generator", "file"):
                if group in self.groups:
                    self.groups[group].setEnabled(values["source"] == group or teacher)
            for name, field in self.fields.items():  # a teacher has only its seed
                if teacher and name != "seed" and self.schema_group(name) == "generator":
                    field.setEnabled(False)
                else:
                    field.setEnabled(True)
        problems = self.canvas.report.problems_of(self.node_id)
        run_error = self.canvas.run_errors.get(self.node_id)
        texts = [p.message for p in problems] + ([run_error] if run_error else [])
        self.problems.setText("\n".join(f"⚠ {t}" for t in texts))
        self.problems.setVisible(bool(texts))

    def schema_group(self, name: str) -> str | None:
        node = self.canvas.doc.nodes.get(self.node_id) if self.node_id else None
        nt = NODE_TYPES.get(node.type) if node is not None else None
        return nt.schema[name].group if nt is not None and name in nt.schema else None

    def edit(self, name: str, value: Any) -> str | None:
        """Apply an edit from a widget; on refusal show the message and the last good value."""
        if self.node_id is None:
            return None
        params = self.canvas.doc.nodes[self.node_id].params
        graph_seed = self.canvas.doc.settings.get("seed", 0)
        if name == "source" and value == "teacher" and params.get("seed", 0) == graph_seed:
            # a teacher drawn with the graph's own seed is the student: nothing to learn
            error = self.canvas.set_params(
                self.node_id, {name: value, "seed": graph_seed + 1}, "teacher target"
            )
        else:
            error = self.canvas.set_param(self.node_id, name, value)
        field = self.fields.get(name)
        if field is not None:
            field.show_error(error)
            if error:
                self.refresh()
        return error

    def error_text(self, name: str) -> str:
        field = self.fields.get(name)
        return field.error.text() if field is not None else ""
