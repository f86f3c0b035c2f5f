"""Typing in the fields of the properties and training panels, with real keys: a value typed
without Enter counts for Save, Run, Train and Export; Undo and Redo act on the document from a
field; what is typed is taken as typed or refused with a message that quotes it."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit

from conv3dt_studio import nodes
from conv3dt_studio.nodes.examples import teacher_student

CTRL, SHIFT = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
INT_EXPECTED = "expected an integer >= 1 and <= 2147483647"
INT3_EXPECTED = "expected 1 or 3 positive integers"
SHAPE_EXPECTED = "expected a sequence of 1 to 32 positive integers (each < 2**31)"


def _type(qtbot, window, widget, text, enter=False):
    """Focus ``widget``, select its value and type ``text`` (then Enter when asked), as a user."""
    if QApplication.activeWindow() is not window:
        with qtbot.waitActive(window):
            window.activateWindow()
    widget.setFocus()
    assert QApplication.focusWidget() is widget
    widget.selectAll()
    QTest.keyClicks(widget, text)
    if enter:
        QTest.keyClick(widget, Qt.Key.Key_Return)


def _n_filters(window):
    window.canvas.select("conv3d_transpose")
    return window.properties.fields["n_filters"].editor.spin


def _sample_shape(window):
    window.canvas.select("data")
    return window.properties.fields["sample_shape"].editor.findChild(QLineEdit)


def _params(window, node_id):
    return window.canvas.doc.nodes[node_id].params


def _saved_n_filters(path):
    saved = json.loads(path.read_text())
    return [n["params"]["n_filters"] for n in saved["nodes"] if n["id"] == "conv3d_transpose"]


def _saved_and_opened(make_window, make_doc, tmp_path):
    """The small graph saved as g.json and opened from there: (its path, the window)."""
    path = tmp_path / "g.json"
    make_doc().save(path)
    return path, make_window(path=str(path))


# ---------------------------------------------------------------------- typed, not confirmed
def test_ctrl_s_saves_a_number_typed_without_enter(make_window, make_doc, tmp_path, qtbot):
    path, window = _saved_and_opened(make_window, make_doc, tmp_path)
    spin = _n_filters(window)
    _type(qtbot, window, spin, "7")
    QTest.keyClick(spin, Qt.Key.Key_S, CTRL)
    assert _saved_n_filters(path) == [7]
    assert _params(window, "conv3d_transpose")["n_filters"] == 7
    assert not window.is_modified()
    assert window.canvas.undo_stack.undoText() == "set conv3d_transpose.n_filters"


def test_save_as_saves_a_shape_typed_without_enter(window, fake_dialogs, tmp_path, qtbot):
    path = tmp_path / "as.json"
    fake_dialogs.save_paths.append(str(path))
    line = _sample_shape(window)
    _type(qtbot, window, line, "2, 2, 6, 6, 3")
    QTest.keyClick(line, Qt.Key.Key_S, CTRL | SHIFT)
    data = [n for n in json.loads(path.read_text())["nodes"] if n["id"] == "data"]
    assert data[0]["params"]["sample_shape"] == [2, 2, 6, 6, 3]
    assert not window.is_modified()


def test_a_refused_value_typed_without_enter_is_not_saved(make_window, make_doc, tmp_path, qtbot):
    path, window = _saved_and_opened(make_window, make_doc, tmp_path)
    spin = _n_filters(window)
    _type(qtbot, window, spin, "3.5")
    QTest.keyClick(spin, Qt.Key.Key_S, CTRL)
    assert f"{INT_EXPECTED}. Received: n_filters='3.5'" in window.properties.error_text("n_filters")
    assert _saved_n_filters(path) == [3]
    assert spin.text() == "3"  # what was saved


@pytest.mark.parametrize(
    ("field", "text", "shape"),
    [
        ("n_filters", "7", (2, 2, 7, 10, 10, 5)),
        ("sample_shape", "2, 2, 6, 6, 3", (2, 2, 3, 8, 8, 5)),
    ],
)
def test_f5_runs_with_a_value_typed_without_enter(window, qtbot, field, text, shape):
    widget = _n_filters(window) if field == "n_filters" else _sample_shape(window)
    _type(qtbot, window, widget, text)
    with qtbot.waitSignal(window.run_finished, timeout=30_000) as run:
        QTest.keyClick(widget, Qt.Key.Key_F5)
    assert run.args[0].prediction.shape == shape
    assert window.is_modified()


def test_f6_trains_with_a_setting_typed_without_enter(make_window, qtbot):
    doc = teacher_student()
    doc.extras["training"]["epochs"] = 3
    window = make_window(doc)
    window.docks["training_panel"].raise_()
    spin = window.training.panel.fields["epochs"].editor.spin
    _type(qtbot, window, spin, "1")
    with qtbot.waitSignal(window.training.train_finished, timeout=60_000) as trained:
        QTest.keyClick(spin, Qt.Key.Key_F6)
    assert len(trained.args[0].history["loss"]) == 1
    assert window.canvas.doc.extras["training"]["epochs"] == 1


def test_export_json_writes_a_number_typed_without_enter(window, fake_dialogs, tmp_path, qtbot):
    path = tmp_path / "exported.json"
    fake_dialogs.save_paths.append(str(path))
    _type(qtbot, window, _n_filters(window), "5")
    window.action_export_json.trigger()  # the File menu: the field keeps the focus
    assert _saved_n_filters(path) == [5]
    assert nodes.load(path).nodes["conv3d_transpose"].params["n_filters"] == 5


# ---------------------------------------------------------------------- undo and redo in a field
def test_undo_and_redo_in_a_number_box_act_on_the_document(window, qtbot):
    spin = _n_filters(window)
    _type(qtbot, window, spin, "7", enter=True)
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert _params(window, "conv3d_transpose")["n_filters"] == 3
    assert spin.text() == "3"
    QTest.keyClick(spin, Qt.Key.Key_Y, CTRL)
    assert _params(window, "conv3d_transpose")["n_filters"] == 7
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL | SHIFT)
    assert _params(window, "conv3d_transpose")["n_filters"] == 7
    assert spin.text() == "7"


def test_undo_in_a_3_int_box_acts_on_the_document(window, qtbot):
    window.canvas.select("conv3d_transpose")
    spin = window.properties.fields["stride"].editor.spins[0]
    _type(qtbot, window, spin, "2, 2, 2", enter=True)
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert _params(window, "conv3d_transpose")["stride"] == [1, 1, 1]
    assert spin.text() == "d 1"


def test_undo_and_redo_in_a_text_field_act_on_the_document(window, qtbot):
    window.canvas.select("conv3d_transpose")
    cluster = window.properties.fields["optimizer"].editor
    line = cluster.fields["learning_rate"].findChild(QLineEdit)
    _type(qtbot, window, line, "0.5", enter=True)
    QTest.keyClick(line, Qt.Key.Key_Z, CTRL)
    assert _params(window, "conv3d_transpose")["optimizer"]["learning_rate"] == 0.001
    assert line.text() == "0.001"
    QTest.keyClick(line, Qt.Key.Key_Y, CTRL)
    assert _params(window, "conv3d_transpose")["optimizer"]["learning_rate"] == 0.5
    assert line.text() == "0.5"


def test_undo_in_a_training_field_acts_on_the_document(make_window, qtbot):
    window = make_window(teacher_student())
    window.docks["training_panel"].raise_()  # its tab, clicked
    line = window.training.panel.fields["validation_split"].editor.findChild(QLineEdit)
    _type(qtbot, window, line, "0.5", enter=True)
    assert window.canvas.doc.extras["training"]["validation_split"] == 0.5
    QTest.keyClick(line, Qt.Key.Key_Z, CTRL)
    assert window.canvas.doc.extras["training"]["validation_split"] == 0.25
    assert line.text() == "0.25"


def test_undo_first_takes_back_the_typing_then_undoes_the_document(window, qtbot):
    spin = _n_filters(window)
    _type(qtbot, window, spin, "7", enter=True)
    _type(qtbot, window, spin, "9")  # not confirmed
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert spin.text() == "7"  # the typing taken back, the document untouched
    assert _params(window, "conv3d_transpose")["n_filters"] == 7
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert _params(window, "conv3d_transpose")["n_filters"] == 3
    assert spin.text() == "3"


# ---------------------------------------------------------------------- taken as typed or refused
@pytest.mark.parametrize(
    ("text", "received"),
    [
        ("3.5", "n_filters='3.5'"),
        ("1e3", "n_filters='1e3'"),
        ("-5", "n_filters=-5"),
        ("99999999999", "n_filters=99999999999"),
        ("abc", "n_filters='abc'"),
    ],
)
def test_a_number_box_refuses_what_it_cannot_take_as_typed(window, text, received, qtbot):
    spin = _n_filters(window)
    _type(qtbot, window, spin, text, enter=True)
    assert window.properties.error_text("n_filters") == (
        f"Invalid value for `n_filters`: {INT_EXPECTED}. Received: {received}"
    )
    assert _params(window, "conv3d_transpose")["n_filters"] == 3
    assert spin.text() == "3"  # the last good value
    assert window.canvas.undo_stack.count() == 0


@pytest.mark.parametrize(
    ("field", "text", "received"),
    [
        ("stride", "1.5,1,1", "stride='1.5,1,1'"),
        ("stride", "-3", "stride=[-3, 1, 1]"),
        ("stride", "-1,-1,-1", "stride=[-1, -1, -1]"),
        ("dilation_rate", "1.5,1,1", "dilation_rate='1.5,1,1'"),
        ("dilation_rate", "-3", "dilation_rate=[-3, 1, 1]"),
        ("dilation_rate", "99999999999,1,1", "dilation_rate=[99999999999, 1, 1]"),
    ],
)
def test_a_3_int_box_refuses_what_it_cannot_take_as_typed(window, field, text, received, qtbot):
    window.canvas.select("conv3d_transpose")
    spins = window.properties.fields[field].editor.spins
    _type(qtbot, window, spins[0], text, enter=True)
    assert window.properties.error_text(field) == (
        f"Invalid value for `{field}`: {INT3_EXPECTED}. Received: {received}"
    )
    assert _params(window, "conv3d_transpose")[field] == [1, 1, 1]
    assert [s.text() for s in spins] == ["d 1", "h 1", "w 1"]


def test_a_number_the_box_takes_is_taken_as_typed(window, qtbot):
    window.canvas.select("conv3d_transpose")
    spins = window.properties.fields["dilation_rate"].editor.spins
    _type(qtbot, window, spins[1], "2", enter=True)
    assert _params(window, "conv3d_transpose")["dilation_rate"] == [1, 2, 1]
    _type(qtbot, window, _n_filters(window), "12", enter=True)
    assert _params(window, "conv3d_transpose")["n_filters"] == 12
    assert window.properties.error_text("n_filters") == ""


@pytest.mark.parametrize("text", ["abc", "2.5,2,8,8,3"])
def test_a_refused_shape_quotes_the_text_as_typed(window, text, qtbot):
    line = _sample_shape(window)
    _type(qtbot, window, line, text, enter=True)
    assert window.properties.error_text("sample_shape") == (
        f"Invalid value for `sample_shape`: {SHAPE_EXPECTED}. Received: sample_shape={text!r}"
    )
    assert _params(window, "data")["sample_shape"] == [2, 2, 8, 8, 3]
    assert line.text() == "2, 2, 8, 8, 3"


# ---------------------------------------------------------------------- the training panel
def test_a_refused_training_setting_shows_the_last_good_value(make_window, qtbot):
    window = make_window(teacher_student())
    window.docks["training_panel"].raise_()
    panel = window.training.panel
    line = panel.fields["validation_split"].editor.findChild(QLineEdit)
    _type(qtbot, window, line, "0.95", enter=True)
    assert "Received: validation_split=0.95" in panel.fields["validation_split"].error.text()
    assert window.canvas.doc.extras["training"]["validation_split"] == 0.25
    assert line.text() == "0.25"  # what the next training uses


# ---------------------------------------------------------------------- step keys, Escape, menus
@pytest.mark.parametrize("key", [Qt.Key.Key_Up, Qt.Key.Key_PageDown, "wheel"], ids=str)
def test_a_step_on_typing_the_box_cannot_take_confirms_it_as_enter(window, qtbot, key):
    """Qt's step first read '2,2' as 22 (',' a thousands separator) and dropped '3.5' silently:
    a step key or the wheel now confirms such typing as Enter does, and steps nothing."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QWheelEvent

    spin = _n_filters(window)
    for text in ("2,2", "3.5"):
        _type(qtbot, window, spin, text)
        if key == "wheel":
            centre = QPointF(spin.rect().center())
            QApplication.sendEvent(
                spin,
                QWheelEvent(
                    centre, spin.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120),
                    Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                    Qt.ScrollPhase.NoScrollPhase, False,
                ),
            )  # fmt: skip
        else:
            QTest.keyClick(spin, key)
        assert _params(window, "conv3d_transpose")["n_filters"] == 3
        assert f"Received: n_filters='{text}'" in window.properties.error_text("n_filters")
        assert spin.text() == "3" and window.canvas.undo_stack.count() == 0
    _type(qtbot, window, spin, "7")
    QTest.keyClick(spin, Qt.Key.Key_Up)  # a number it takes: taken, then stepped
    assert _params(window, "conv3d_transpose")["n_filters"] == 8


def test_a_list_then_a_step_in_a_3_int_box_fills_the_three(window, qtbot):
    window.canvas.select("conv3d_transpose")
    spins = window.properties.fields["stride"].editor.spins
    _type(qtbot, window, spins[0], "2,2,2")
    QTest.keyClick(spins[0], Qt.Key.Key_Up)
    assert _params(window, "conv3d_transpose")["stride"] == [2, 2, 2]


@pytest.mark.parametrize("field", ["n_filters", "stride", "sample_shape"])
def test_escape_throws_the_typing_away(window, qtbot, field):
    if field == "sample_shape":
        widget = _sample_shape(window)
    elif field == "stride":
        window.canvas.select("conv3d_transpose")
        widget = window.properties.fields["stride"].editor.spins[0]
    else:
        widget = _n_filters(window)
    shown = widget.text()
    _type(qtbot, window, widget, "7")
    QTest.keyClick(widget, Qt.Key.Key_Escape)
    assert widget.text() == shown
    QTest.keyClick(widget, Qt.Key.Key_Tab)  # leaving the field confirms nothing now
    assert window.canvas.undo_stack.count() == 0


def test_undo_clears_the_message_of_a_refused_typing(window, qtbot):
    spin = _n_filters(window)
    _type(qtbot, window, spin, "5", enter=True)
    _type(qtbot, window, spin, "3.5", enter=True)
    assert "3.5" in window.properties.error_text("n_filters")
    QTest.keyClick(spin, Qt.Key.Key_Z, CTRL)
    assert _params(window, "conv3d_transpose")["n_filters"] == 3
    assert spin.text() == "3" and window.properties.error_text("n_filters") == ""


def test_open_recent_and_examples_confirm_typing_before_asking(
    window, qtbot, fake_dialogs, tmp_path
):
    """As New and Open: the typed value is a change, so the unsaved-changes question comes."""
    from PySide6.QtWidgets import QMenu

    other = tmp_path / "other.json"
    teacher_student().save(other)
    window.recent_menu.add(str(other))
    fake_dialogs.save_changes_answer = "cancel"
    menus = {m.title(): m for m in window.findChildren(QMenu)}
    entries = [
        next(a for a in window.recent_menu.actions() if str(other) in a.text()),
        menus["Open &Example"].actions()[0],
    ]
    for asked, entry in enumerate(entries, start=1):
        spin = _n_filters(window)
        _type(qtbot, window, spin, str(6 + asked))
        entry.trigger()
        assert fake_dialogs.save_changes_asked == asked
        assert _params(window, "conv3d_transpose")["n_filters"] == 6 + asked  # kept: Cancel


def test_duplicate_takes_the_node_as_its_fields_show_it(window, qtbot):
    spin = _n_filters(window)
    _type(qtbot, window, spin, "7")
    window.edit_actions.duplicate.trigger()
    doc = window.canvas.doc
    convs = [n for n in doc.nodes.values() if n.type == "conv3d_transpose"]
    assert len(convs) == 2 and all(n.params["n_filters"] == 7 for n in convs)
