"""Actions, declared once: :func:`make_action` gives each its objectName, text, slot, shortcut and
tip in one call; menus and toolbars place the same QAction objects. :func:`stack_actions` and
:func:`canvas_actions` declare the actions that come with the undo stack and the canvas.

An action belongs to (is a child of) the window, so ``window.findChild(QAction, name)`` finds it,
and is added to the widget whose focus its shortcut needs: the window, or the canvas for keys that
must not act while a text field has the focus (Delete, Tab, F). :func:`window_keys` lists the
window's keys for its non-modal dialogs to answer too. :func:`prepare_first` has some actions call
a preparation of the window's first (confirming a value still being typed in a field).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QUndoStack
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from .canvas import Canvas

Shortcut = QKeySequence | QKeySequence.StandardKey | Qt.Key | str


class Action(QAction):
    """A QAction made by :func:`make_action`: its slot runs after ``prepare`` when one is set."""

    def __init__(self, text: str, owner: QWidget, slot: Callable[[], object] | None) -> None:
        super().__init__(text, owner)
        self.slot = slot
        self.prepare: Callable[[], object] | None = None
        if slot is not None:
            self.triggered.connect(self.act)

    def act(self, _checked: bool = False) -> None:
        if self.prepare is not None:
            self.prepare()
        if self.slot is not None:
            self.slot()


def prepare_first(prepare: Callable[[], object], actions: Iterable[QAction]) -> None:
    """Have ``actions`` (made by :func:`make_action`), however triggered (key, menu, toolbar),
    call ``prepare`` before they act."""
    for action in actions:
        if not isinstance(action, Action):
            raise TypeError(f"{action.objectName()} was not made by make_action")
        action.prepare = prepare


def make_action(
    owner: QWidget,
    name: str,
    text: str,
    slot: Callable[[], object] | None = None,
    shortcut: Shortcut | Sequence[Shortcut] | None = None,
    tip: str = "",
    *,
    widget: QWidget | None = None,
    context: Qt.ShortcutContext | None = None,
    checkable: bool = False,
) -> QAction:
    """A QAction owned by ``owner`` and added to ``widget`` (default ``owner``); the tip is the
    text without '…' and '&' unless given. Several shortcuts may be given as a list."""
    action = Action(text, owner, slot)
    action.setObjectName(name)
    if shortcut is not None:
        keys = shortcut if isinstance(shortcut, (list, tuple)) else [shortcut]
        action.setShortcuts([QKeySequence(k) for k in keys])
    if context is not None:
        action.setShortcutContext(context)
    action.setCheckable(checkable)
    action.setToolTip(tip or text.replace("…", "").replace("&", ""))
    action.setStatusTip(action.toolTip())
    (widget or owner).addAction(action)
    return action


def window_keys(window: QWidget) -> list[QAction]:
    """The actions whose keys answer anywhere in ``window`` (Undo, Run, Save...), for another
    window of the editor to add: a non-modal dialog (the Summary) is a window of its own, which
    a window's shortcuts do not reach. Escape (Stop) is left out: in a dialog it closes it."""
    escape = QKeySequence(Qt.Key.Key_Escape)
    return [
        a
        for a in window.actions()
        if a.shortcutContext() == Qt.ShortcutContext.WindowShortcut
        and a.shortcuts()
        and escape not in a.shortcuts()
    ]


# Keys the README promises beside the platform's own (QKeySequence(StandardKey.Redo) keeps
# only the platform's first binding: Ctrl+Shift+Z on X11, where Ctrl+Y then did nothing).
_ALSO = {QKeySequence.StandardKey.Redo: ("Ctrl+Y", "Ctrl+Shift+Z")}


def _bindings(key: QKeySequence.StandardKey) -> list[QKeySequence]:
    """The platform's binding of ``key``, then the README's own keys for it, each once."""
    keys = [QKeySequence(key)]
    for text in _ALSO.get(key, ()):
        if QKeySequence(text) not in keys:
            keys.append(QKeySequence(text))
    return keys


def stack_actions(owner: QWidget, stack: QUndoStack) -> tuple[QAction, QAction]:
    """The undo stack's own Undo and Redo actions, named action_undo and action_redo, with their
    standard shortcuts, added to ``owner`` (the window: they answer wherever the focus is). Their
    text stays 'Undo'/'Redo' (a toolbar button that grew with the command's name would move the
    buttons after it under the mouse); the tip names the command."""
    undo, redo = stack.createUndoAction(owner, "&Undo"), stack.createRedoAction(owner, "&Redo")
    for action, name, key, text, changed in (
        (undo, "action_undo", QKeySequence.StandardKey.Undo, "&Undo", stack.undoTextChanged),
        (redo, "action_redo", QKeySequence.StandardKey.Redo, "&Redo", stack.redoTextChanged),
    ):
        action.setObjectName(name)
        action.setShortcuts(_bindings(key))
        owner.addAction(action)

        def keep_text(command: str, action: QAction = action, text: str = text) -> None:
            action.setText(text)  # after the stack's own update, which named the command
            word = text.replace("&", "")
            action.setToolTip(f"{word} {command}" if command else word)

        changed.connect(keep_text)
        keep_text("")
    return undo, redo


class CanvasActions(NamedTuple):
    delete: QAction
    select_all: QAction
    node_search: QAction
    fit: QAction
    copy: QAction
    cut: QAction
    paste: QAction
    duplicate: QAction


def canvas_actions(owner: QWidget, canvas: Canvas) -> CanvasActions:
    """The canvas's own keys: on the canvas only, so Delete or Tab in a text field do not act on
    nodes (Delete and Select All also in the canvas's child widgets)."""
    keys, area = Qt.ShortcutContext.WidgetShortcut, Qt.ShortcutContext.WidgetWithChildrenShortcut

    def on_canvas(*args, context: Qt.ShortcutContext = keys) -> QAction:
        return make_action(owner, *args, widget=canvas.viewer, context=context)

    return CanvasActions(
        on_canvas(
            "action_delete",
            "&Delete",
            lambda: canvas.delete_nodes(canvas.selected_ids()),
            [Qt.Key.Key_Delete, Qt.Key.Key_Backspace],
            context=area,
        ),
        on_canvas(
            "action_select_all",
            "Select &All",
            canvas.graph.select_all,
            QKeySequence.StandardKey.SelectAll,
            context=area,
        ),
        on_canvas(
            "action_node_search",
            "Node &Search",
            canvas.graph.toggle_node_search,
            Qt.Key.Key_Tab,
            "Search node types (Tab, with the mouse over the canvas)",
        ),
        on_canvas("action_fit", "&Fit Graph", canvas.fit, "F"),
        on_canvas(
            "action_copy",
            "&Copy",
            canvas.copy_selection,
            QKeySequence.StandardKey.Copy,
            "Copy the selected nodes and their links (graph JSON: paste in any window)",
            context=area,
        ),
        on_canvas(
            "action_cut",
            "Cu&t",
            canvas.cut_selection,
            QKeySequence.StandardKey.Cut,
            "Cut the selected nodes",
            context=area,
        ),
        on_canvas(
            "action_paste",
            "&Paste",
            canvas.paste,
            QKeySequence.StandardKey.Paste,
            "Paste nodes (graph JSON from the clipboard) at the view centre",
            context=area,
        ),
        on_canvas(
            "action_duplicate",
            "D&uplicate",
            canvas.duplicate,
            "Ctrl+D",
            "Duplicate the selected nodes with the links among them",
            context=area,
        ),
    )
