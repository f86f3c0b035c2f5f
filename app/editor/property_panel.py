"""The properties panel: widgets generated from the node type's parameter declaration.

One editor class per :class:`compute.Param` kind (a 3-int vector editor for ``int3``, a combo box for
``choice``, a check box for ``bool``, bounded spin boxes for ``int``...); parameters are grouped by
their ``group`` and clusters get their own box. Every edit goes through
:meth:`app.canvas.Canvas.set_param`: a refused value leaves the document untouched, the editor goes
back to the last good value and the field shows the message. Edits are undoable.

What is typed is taken as typed or refused, never quietly changed: a number box keeps any text
(a plain QSpinBox drops the characters it cannot take, making 35 of '3.5'), and a text that is not
a list of integers goes to the schema as the text itself, so its refusal quotes what was typed.
A value typed but not confirmed yet (no Enter) is confirmed by :meth:`PropertyPanel.commit_pending`
(the window calls it before Save, Run...). Undo and Redo typed in a field act on the document
(:class:`DocumentKeys`).
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Qt, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QKeySequence, QValidator
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
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from conv3dt_studio.compute import Param
from conv3dt_studio.nodes import NODE_TYPES, media
from conv3dt_studio.nodes.data_sources import ARRAY_SUFFIXES

from .canvas import Canvas, display_name

INT_LIMIT = 2**31 - 1
LIST_SEPARATORS = r"[,;x×\s()\[\]]+"  # between the numbers of a typed or pasted list
INTEGER = re.compile(r"[+-]?[0-9]+")  # as typed: not '3.5', '1e3' or '1_000'
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


def _patterns(suffixes: tuple[str, ...]) -> str:
    return " ".join(f"*{s}" for s in suffixes)


# what a Data node reads; a folder of images is chosen by one of its images
DATA_FILTER = (
    f"Data files ({_patterns((*ARRAY_SUFFIXES, *media.TIFF_SUFFIXES, *media.VIDEO_SUFFIXES))});;"
    f"A folder of images: choose any one of them ({_patterns(media.IMAGE_SUFFIXES)});;"
    "All files (*)"
)
FOLDER_IMAGES = tuple(s for s in media.IMAGE_SUFFIXES if s not in media.TIFF_SUFFIXES)
OpenPath = Callable[[str, str], str | None]  # Dialogs.open_path(title, file filter)


def chosen_data_path(path: str) -> str:
    """The data path a file chosen in the browse dialog stands for: the file, or for a single
    image (a frame) the folder of images holding it."""
    return os.path.dirname(path) if path.lower().endswith(FOLDER_IMAGES) else path


def tooltip(param: Param) -> str:
    return f"{param.help}\nAllowed: {param.describe()}"


class Editor(QWidget):
    """Base of the per-kind editors: ``edited`` carries the user's new value. An editor typed in
    may hold text not confirmed yet (:meth:`pending`), which :meth:`commit_pending` hands on as
    Enter would. Its objectName is ``name`` (default ``param_<parameter>``); the widgets typed
    or clicked in take it with a suffix (``_spin``, ``_line``, ``_check``, ``_combo``; a 3-int
    editor's ``_d``, ``_h``, ``_w`` and ``_set``)."""

    edited = Signal(object)

    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__()
        self.param = param
        self.setToolTip(tooltip(param))
        self.setObjectName(name or f"param_{param.name}")

    def part_name(self, part: str) -> str:
        """The objectName of this editor's widget ``part``."""
        return f"{self.objectName()}_{part}"

    def set_value(self, value: Any) -> None:
        with QSignalBlocker(self):
            self._show(value)

    def _show(self, value: Any) -> None:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def pending(self) -> bool:
        """Whether the field holds typing not confirmed yet."""
        return False

    def commit_pending(self) -> None:
        """Confirm the typing not confirmed yet, as Enter would (nothing when there is none)."""

    def abandon_pending(self) -> None:
        """Throw the typing not confirmed yet away: the field shows its value again."""


class DocumentKeys(QObject):
    """Undo and Redo pressed in a field act on the document, as anywhere in the window: a
    QLineEdit (a spin box's too) would keep these keys for its own text history, empty after each
    confirmed value, so they would do nothing. While the field holds typing not confirmed yet
    they stay the field's own: Ctrl+Z first takes back what was just typed, as in any text box
    (the least surprising: undoing the document's last edit would throw the typing away too);
    once the field shows its confirmed value again, the next Ctrl+Z undoes the document."""

    KEYS = (QKeySequence.StandardKey.Undo, QKeySequence.StandardKey.Redo)

    def __init__(self, editor: Editor) -> None:
        super().__init__(editor)
        self.editor = editor

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if not isinstance(event, QKeyEvent) or not self._handles(event):
            return False
        if event.key() == Qt.Key.Key_Escape:  # typing pending: Escape throws it away
            if event.type() == QEvent.Type.ShortcutOverride:
                event.accept()  # the field's key now, not Stop's
                return False
            self.editor.abandon_pending()
            return True
        event.ignore()  # Undo / Redo, nothing typed: not the field's, the window's shortcut acts
        return True

    def _handles(self, event: QKeyEvent) -> bool:
        kind = event.type()
        if event.key() == Qt.Key.Key_Escape and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            pending = kind in (QEvent.Type.ShortcutOverride, QEvent.Type.KeyPress)
            return pending and self.editor.pending()
        return (
            kind == QEvent.Type.ShortcutOverride
            and any(event.matches(key) for key in self.KEYS)
            and not self.editor.pending()
        )


def split_list(text: str) -> list[str]:
    """'3, 3, 3' / '3x3x3' / '[3 3 3]' -> ['3', '3', '3']."""
    return [p for p in re.split(LIST_SEPARATORS, text) if p]


def read_ints(text: str) -> list[int] | None:
    """The integers of a typed list ('3, 3, 3', '2x2', '-1'), or None when the text holds
    anything else ('2.5', '1e3', 'abc', nothing)."""
    parts = split_list(text)
    if not parts or not all(INTEGER.fullmatch(p) for p in parts):
        return None
    return [int(p) for p in parts]


class TypedSpinBox(QSpinBox):
    """A spin box that keeps what is typed: a list ('3,3,3,3', which a plain QSpinBox turns into
    3333), a number out of range ('-5', '99999999999') or anything else ('3.5', '1e3', of which
    a plain one drops the characters it cannot take and makes 35 or 13). Enter, leaving the box
    or :meth:`commit` confirm it: a number the box takes becomes its value (``valueChanged``),
    any other text is handed on as ``text_entered`` (without the prefix) for the editor to read
    and the schema to take or refuse; the box shows its last good value meanwhile."""

    text_entered = Signal(str)

    def value_text(self) -> str:
        """The text that shows the current value."""
        return self.prefix() + self.textFromValue(self.value()) + self.suffix()

    def pending(self) -> bool:
        """Whether the box holds typing not confirmed yet."""
        return self.text() != self.value_text()

    def typed(self, text: str | None = None) -> str:
        """The current (or given) text without the prefix."""
        text = self.text() if text is None else text
        return text[len(self.prefix()) :] if text.startswith(self.prefix()) else text

    def validate(self, text: str, pos: int) -> object:  # noqa: D102 - Qt's hook
        typed = self.typed(text).lstrip()
        if re.search(LIST_SEPARATORS, typed) and split_list(typed):
            return QValidator.State.Intermediate, text, pos  # a list: not '2,2' read as 22
        state, text, pos = super().validate(text, pos)  # type: ignore[misc]
        if state != QValidator.State.Acceptable:
            state = QValidator.State.Intermediate  # kept: confirmed, it is taken or refused
        return state, text, pos

    def commit(self) -> None:
        """Confirm what is typed, as Enter does (nothing when nothing is pending)."""
        if not self.pending():
            return
        state = self.validate(self.text(), 0)[0]  # type: ignore[index]
        if state == QValidator.State.Acceptable:
            self.interpretText()  # a number the box takes: valueChanged
            return
        text = self.typed().strip()
        self.lineEdit().setText(self.value_text())  # until the edit is taken
        self.text_entered.emit(text)

    def abandon(self) -> None:
        """Throw away what is typed: the box shows its value again."""
        self.lineEdit().setText(self.value_text())

    def stepBy(self, steps: int) -> None:  # noqa: N802 - Qt's name
        """An arrow key, Page Up/Down or the wheel: on typing the box cannot take as a number
        ('2,2', '3.5') it confirms the typing as Enter does (Qt would first make 22 of '2,2', or
        silently drop '3.5'), and steps nothing on top of it."""
        if self.pending() and self.validate(self.text(), 0)[0] != QValidator.State.Acceptable:  # type: ignore[index]
            self.commit()
            return
        super().stepBy(steps)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.commit()
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 - Qt's name
        if event.reason() != Qt.FocusReason.PopupFocusReason:  # not for its context menu
            self.commit()
        super().focusOutEvent(event)


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
    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name)
        self.spin = _spin(param, kind=TypedSpinBox)
        self.spin.setObjectName(self.part_name("spin"))
        _single(self, self.spin)
        self.spin.valueChanged.connect(self.edited.emit)
        self.spin.text_entered.connect(self._commit_text)
        self.spin.installEventFilter(DocumentKeys(self))

    def _commit_text(self, text: str) -> None:
        ints = read_ints(text)  # '-5' as -5; '3.5', '1e3', '3,3' as typed, for the schema
        self.edited.emit(ints[0] if ints is not None and len(ints) == 1 else text)

    def pending(self) -> bool:
        return self.spin.pending()

    def commit_pending(self) -> None:
        self.spin.commit()

    def abandon_pending(self) -> None:
        self.spin.abandon()

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.spin):
            if isinstance(value, int) and not isinstance(value, bool):
                # a damaged file may hold any integer: show it clamped (the node reports it)
                self.spin.setValue(max(self.spin.minimum(), min(self.spin.maximum(), value)))


class LineEditor(Editor):
    """Base of the editors typed in a line: Enter, leaving the field or :meth:`commit_pending`
    hand on what was typed, once (:meth:`value_of` the text)."""

    def __init__(self, param: Param, name: str | None = None, placeholder: str = "") -> None:
        super().__init__(param, name)
        self.line = QLineEdit()
        self.line.setObjectName(self.part_name("line"))
        self.line.setPlaceholderText(placeholder)
        _single(self, self.line)
        self.shown = ""  # the text of the last value shown: anything else is typing
        self.line.editingFinished.connect(self.commit_pending)
        self.line.installEventFilter(DocumentKeys(self))

    def value_of(self, text: str) -> Any:
        return text

    def text_of(self, value: Any) -> str:
        return str(value)

    def pending(self) -> bool:
        return self.line.text() != self.shown

    def commit_pending(self) -> None:
        if self.pending():
            self.shown = self.line.text()  # handed on once (a refusal shows the last good value)
            self.edited.emit(self.value_of(self.shown))

    def abandon_pending(self) -> None:
        with QSignalBlocker(self.line):
            self.line.setText(self.shown)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.line):
            self.line.setText(self.text_of(value))
        self.shown = self.line.text()


class FloatEditor(LineEditor):
    """A text field (floats like 1e-7 do not fit a spin box's fixed decimals)."""

    def value_of(self, text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text  # the schema names the problem

    def text_of(self, value: Any) -> str:
        return repr(value) if isinstance(value, float) else str(value)


class StrEditor(LineEditor):
    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name, "(empty)")


class BoolEditor(Editor):
    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name)
        self.check = QCheckBox()
        self.check.setObjectName(self.part_name("check"))
        _single(self, self.check)
        self.check.toggled.connect(self.edited.emit)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.check):
            self.check.setChecked(bool(value))


class ChoiceEditor(Editor):
    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name)
        self.combo = QComboBox()
        self.combo.setObjectName(self.part_name("combo"))
        self.combo.addItems(list(param.choices))
        _single(self, self.combo)
        self.combo.currentTextChanged.connect(self.edited.emit)

    def _show(self, value: Any) -> None:
        with QSignalBlocker(self.combo):
            index = self.combo.findText(str(value)) if isinstance(value, str) else -1
            self.combo.setCurrentIndex(index)  # -1: blank for a damaged value, never a wrong one


class Int3Editor(Editor):
    """Three spin boxes (depth, height, width); a nullable one has a 'set' check box. A list
    typed or pasted into any box fills the three ('3, 3, 3'); one number sets its axis; any other
    text goes to the schema, whose refusal shows under the field."""

    AXES = ("d", "h", "w")

    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.enabled: QCheckBox | None = None
        if param.nullable:
            self.enabled = QCheckBox("set")
            self.enabled.setObjectName(self.part_name("set"))
            self.enabled.setToolTip("Unchecked: None (inferred)")
            self.enabled.toggled.connect(self._on_enabled)
            row.addWidget(self.enabled)
        self.spins: list[TypedSpinBox] = []
        for axis in self.AXES:
            spin = _spin(param, 0 if param.minimum is None else param.minimum, TypedSpinBox)
            spin.setObjectName(self.part_name(axis))
            spin.setPrefix(f"{axis} ")
            spin.setMinimumWidth(64)
            spin.valueChanged.connect(self._commit)
            spin.text_entered.connect(lambda text, spin=spin: self._commit_text(spin, text))
            spin.installEventFilter(DocumentKeys(self))
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

    def _commit_text(self, typed_in: TypedSpinBox, text: str) -> None:
        ints = read_ints(text)
        if ints is not None and len(ints) == 1:  # '0' or '-3 ': the axis it was typed in
            ints = [ints[0] if s is typed_in else s.value() for s in self.spins]
        if ints is not None and len(ints) == len(self.spins):
            fits = all(s.minimum() <= v <= s.maximum() for s, v in zip(self.spins, ints))
            if fits:
                for spin, v in zip(self.spins, ints):
                    with QSignalBlocker(spin):
                        spin.setValue(v)
        self.edited.emit(text if ints is None else ints)  # the schema names the problem

    def pending(self) -> bool:
        return any(s.pending() for s in self.spins)

    def commit_pending(self) -> None:
        for spin in self.spins:
            spin.commit()

    def abandon_pending(self) -> None:
        for spin in self.spins:
            spin.abandon()

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


class ShapeEditor(LineEditor):
    """A tensor shape typed as '6, 5, 64, 64, 3' (× and x separators accepted); any text that
    is not a list of integers goes to the schema as typed ('2.5,2,8,8,3')."""

    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name, "e.g. 6, 5, 64, 64, 3")

    def value_of(self, text: str) -> Any:
        ints = read_ints(text)
        return text if ints is None else ints

    def text_of(self, value: Any) -> str:
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value)


class ClusterEditor(Editor):
    """A nested schema (the optimizer cluster): one editor per field; emits the whole dict.
    The fields keep their plain names (``param_learning_rate``): a node's panel shows one
    cluster of each name."""

    def __init__(self, param: Param, name: str | None = None) -> None:
        super().__init__(param, name)
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

    def pending(self) -> bool:
        return any(ed.pending() for ed in self.fields.values())

    def commit_pending(self) -> None:
        for ed in self.fields.values():
            ed.commit_pending()

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


def make_editor(param: Param, name: str | None = None) -> Editor:
    """The editor of ``param``'s kind, named ``name`` (default ``param_<parameter>``)."""
    return EDITORS[param.kind](param, name)


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
    """Shows and edits the selected node's parameters. A file parameter (a Data node's
    ``path``) has a browse button (``param_path_browse``) when ``open_path`` (the window's
    :meth:`.Dialogs.open_path`) is given."""

    def __init__(self, canvas: Canvas, open_path: OpenPath | None = None) -> None:
        super().__init__()
        self.setObjectName("properties_panel_view")
        self.setWidgetResizable(True)
        self.setMinimumWidth(400)
        self.canvas = canvas
        self.open_path = open_path
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
        files = nt.path_params if nt else ()
        for group, params in nt.schema.groups().items() if nt else []:
            for cluster in [p for p in params if p.kind == "cluster"]:
                box.addWidget(self._group(cluster.name.replace("_", " ").title(), [cluster]))
            plain = [p for p in params if p.kind != "cluster"]
            if plain:
                title = GROUP_TITLES.get(group, group.title())
                self.groups[group] = self._group(title, plain, files)
                box.addWidget(self.groups[group])
        box.addStretch(1)
        self.setWidget(body)
        self.refresh()

    def _group(self, title: str, params: list[Param], files: tuple[str, ...] = ()) -> QGroupBox:
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
                browse = p.name in files and self.open_path is not None
                form.addRow(label, self._with_browse(field) if browse else field)
        return group

    def _with_browse(self, field: Field) -> QWidget:
        """``field`` with a '…' button beside it that chooses its file in a dialog."""
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(field, 1)
        button = QToolButton()
        button.setText("…")
        button.setObjectName(field.editor.part_name("browse"))
        button.setToolTip("Choose the file (a folder of images: choose any one of its images)")
        name = field.editor.param.name
        button.clicked.connect(lambda _checked=False: self.browse(name))
        box.addWidget(button, 0, Qt.AlignmentFlag.AlignTop)
        return row

    def browse(self, name: str) -> str | None:
        """Choose the file of the parameter ``name`` in a file dialog and set it (an undoable
        edit, which the Inputs that follow the data share); nothing when cancelled. Returns the
        refusal's message, if any."""
        if self.open_path is None or self.node_id is None:
            return None
        node = display_name(self.canvas.doc.nodes[self.node_id])
        path = self.open_path(f"Choose the data file of {node}", DATA_FILTER)
        return self.edit(name, chosen_data_path(path)) if path else None

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
            field.show_error(None)  # a refused typing's message ends with what it refused
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
            if error:
                self.refresh()  # the last good value (clears the fields' messages)
            field.show_error(error)
        return error

    def commit_pending(self) -> None:
        """Confirm a value typed but not confirmed yet (no Enter) as Enter would: through the
        usual undoable edit, or refused with its message. The window calls it before an action
        that acts on the document (Save, Run...), so that it acts on what the fields show."""
        for field in list(self.fields.values()):
            field.editor.commit_pending()

    def error_text(self, name: str) -> str:
        field = self.fields.get(name)
        return field.error.text() if field is not None else ""
