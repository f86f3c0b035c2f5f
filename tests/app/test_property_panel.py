"""The properties panel: widgets generated from the schema, live shapes, refused values."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from conv3dt_studio.app.editor.property_panel import (
    BoolEditor,
    ChoiceEditor,
    ClusterEditor,
    FloatEditor,
    Int3Editor,
    IntEditor,
    ShapeEditor,
    StrEditor,
)


def _panel(window, node_id):
    window.canvas.select(node_id)
    panel = window.properties
    assert panel.node_id == node_id
    return panel


def test_widgets_follow_the_parameter_kinds(window):
    panel = _panel(window, "conv3d_transpose")
    kinds = {name: type(f.editor) for name, f in panel.fields.items()}
    assert kinds["n_filters"] is IntEditor
    assert kinds["size"] is Int3Editor and kinds["stride"] is Int3Editor
    assert kinds["dilation_rate"] is Int3Editor
    assert kinds["activation"] is ChoiceEditor
    assert kinds["use_bias"] is BoolEditor
    assert kinds["optimizer"] is ClusterEditor
    assert kinds["lda_coeff"] is FloatEditor
    assert kinds["name"] is StrEditor
    assert panel.fields["n_filters"].editor.spin.minimum() == 1
    assert "Number of output channels" in panel.fields["n_filters"].editor.toolTip()
    input_panel = _panel(window, "input")
    assert type(input_panel.fields["shape"].editor) is ShapeEditor


def test_groups_include_optimizer_initializers_training(window):
    from PySide6.QtWidgets import QGroupBox

    panel = _panel(window, "conv3d_transpose")
    titles = {g.title() for g in panel.widget().findChildren(QGroupBox)}
    assert {"Layer", "Optimizer", "Initializers", "Training"} <= titles


def test_editing_n_filters_changes_the_shape_labels(window):
    panel = _panel(window, "conv3d_transpose")
    panel.fields["n_filters"].editor.findChild(QSpinBox).setValue(7)
    assert window.canvas.doc.nodes["conv3d_transpose"].params["n_filters"] == 7
    assert window.canvas.shape_text("time_distributed") == "2×2×7×10×10×5"
    assert window.canvas.shape_text("prediction_6d") == "2×2×7×10×10×5"


def test_editing_the_size_vector_changes_the_shape(window):
    panel = _panel(window, "conv3d_transpose")
    spins = panel.fields["size"].editor.spins
    spins[1].setValue(5)
    assert window.canvas.doc.nodes["conv3d_transpose"].params["size"] == [3, 5, 3]
    assert window.canvas.shape_text("prediction_6d") == "2×2×3×10×12×5"


def test_combo_and_check_box_edit_the_document(window):
    panel = _panel(window, "conv3d_transpose")
    panel.fields["activation"].editor.findChild(QComboBox).setCurrentText("tanh")
    panel.fields["padding"].editor.findChild(QCheckBox).setChecked(True)
    params = window.canvas.doc.nodes["conv3d_transpose"].params
    assert params["activation"] == "tanh" and params["padding"] is True
    assert window.canvas.shape_text("prediction_6d") == "2×2×3×8×8×3"  # "same": input × stride


def test_cluster_field_edits_the_optimizer(window):
    panel = _panel(window, "conv3d_transpose")
    cluster = panel.fields["optimizer"].editor
    cluster.fields["algorithm"].findChild(QComboBox).setCurrentText("sgd")
    assert window.canvas.doc.nodes["conv3d_transpose"].params["optimizer"]["algorithm"] == "sgd"


def test_invalid_value_is_refused_with_its_message(window):
    panel = _panel(window, "conv3d_transpose")
    before = dict(window.canvas.doc.nodes["conv3d_transpose"].params)
    editor = panel.fields["output_padding"].editor
    editor.enabled.setChecked(True)  # [0, 0, 0] < stride: accepted
    editor.spins[0].setValue(2)  # 2 >= stride 1: refused
    assert "expected each value < stride" in panel.error_text("output_padding")
    params = window.canvas.doc.nodes["conv3d_transpose"].params
    assert params["output_padding"] == [0, 0, 0]
    assert editor.spins[0].value() == 0  # the last good value is shown again
    assert {k: v for k, v in params.items() if k != "output_padding"} == {
        k: v for k, v in before.items() if k != "output_padding"
    }


def test_out_of_bounds_float_is_refused(window):
    panel = _panel(window, "conv3d_transpose")
    line = panel.fields["optimizer"].editor.fields["beta_1"].findChild(QLineEdit)
    line.setText("1.5")
    line.editingFinished.emit()
    assert "beta_1" in panel.error_text("optimizer")
    assert window.canvas.doc.nodes["conv3d_transpose"].params["optimizer"]["beta_1"] == 0.9
    assert line.text() == "0.9"


def test_bad_shape_text_is_refused(window):
    panel = _panel(window, "input")
    line = panel.fields["shape"].editor.findChild(QLineEdit)
    line.setText("2, 0, 8")
    line.editingFinished.emit()
    assert "positive integers" in panel.error_text("shape")
    assert window.canvas.doc.nodes["input"].params["shape"] == [2, 2, 8, 8, 3]


def test_valid_but_mismatched_shape_turns_the_node_red(window):
    panel = _panel(window, "input")
    line = panel.fields["shape"].editor.findChild(QLineEdit)
    line.setText("2, 2, 8, 8, 4")
    line.editingFinished.emit()
    assert panel.error_text("shape") == ""
    assert "shape mismatch" in window.canvas.views["input"].view.toolTip()
    assert "shape mismatch" in panel.problems.text()


def test_property_edit_is_undoable(window):
    panel = _panel(window, "conv3d_transpose")
    panel.fields["n_filters"].editor.findChild(QSpinBox).setValue(4)
    window.action_undo.trigger()
    assert window.canvas.doc.nodes["conv3d_transpose"].params["n_filters"] == 3
    assert panel.fields["n_filters"].editor.spin.value() == 3
    window.action_redo.trigger()
    assert window.canvas.doc.nodes["conv3d_transpose"].params["n_filters"] == 4


def test_data_source_enables_only_its_settings(window):
    panel = _panel(window, "data")
    assert panel.groups["generator"].isEnabled() and not panel.groups["file"].isEnabled()
    panel.fields["source"].editor.findChild(QComboBox).setCurrentText("file")
    assert panel.groups["file"].isEnabled() and not panel.groups["generator"].isEnabled()
    assert "No data file given" in window.canvas.views["data"].view.toolTip()


def test_a_damaged_node_can_be_repaired_one_field_at_a_time(make_window):
    from conv3dt_studio import nodes

    doc = nodes.default_document()
    doc.nodes["conv3d_transpose"].params.update(size="abc", activation="nope")
    w = make_window(doc)
    panel = _panel(w, "conv3d_transpose")
    assert "size" in panel.problems.text() and "activation" in panel.problems.text()
    assert panel.edit("size", [2, 2, 2]) is None
    assert panel.edit("activation", "relu") is None
    assert w.canvas.report.ok
    assert w.canvas.shape_text("prediction_6d") == "10×6×3×65×65×4"
    assert "expected each value < stride" in panel.edit("output_padding", [3, 3, 3])


# ---------------------------------------------------------------------- lists in the 3-int editors
def _conv(window):
    return window.canvas.doc.nodes["conv3d_transpose"].params


def _type_into(window, spin, text, paste=False):
    """Focus ``spin``, select its number, type (or paste) ``text`` and press Enter: real keys."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtTest import QTest

    window.activateWindow()
    spin.setFocus()
    spin.selectAll()
    if paste:
        QGuiApplication.clipboard().setText(text)
        QTest.keyClick(spin, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    else:
        QTest.keyClicks(spin, text)
    QTest.keyClick(spin, Qt.Key.Key_Return)


def test_a_typed_list_of_four_is_refused_with_the_schemas_message(window):
    panel = _panel(window, "conv3d_transpose")
    editor = panel.fields["size"].editor
    _type_into(window, editor.spins[0], "3,3,3,3")
    assert panel.error_text("size") == (
        "Invalid value for `size`: expected 1 or 3 positive integers. Received: size=[3, 3, 3, 3]"
    )
    assert _conv(window)["size"] == [3, 3, 3]
    assert [s.value() for s in editor.spins] == [3, 3, 3]  # not 3333
    assert editor.spins[0].text() == "d 3"


def test_a_pasted_list_of_three_fills_the_three_boxes(window):
    panel = _panel(window, "conv3d_transpose")
    editor = panel.fields["stride"].editor
    _type_into(window, editor.spins[1], "2, 1, 2", paste=True)
    assert _conv(window)["stride"] == [2, 1, 2]
    assert [s.value() for s in editor.spins] == [2, 1, 2]
    assert panel.error_text("stride") == ""
    window.action_undo.trigger()  # one edit
    assert _conv(window)["stride"] == [1, 1, 1]


def test_a_typed_number_still_edits_one_axis(window):
    panel = _panel(window, "conv3d_transpose")
    _type_into(window, panel.fields["size"].editor.spins[2], "5")
    assert _conv(window)["size"] == [3, 3, 5]


def test_an_absurd_stride_shows_its_problem_on_the_node_before_any_run(window):
    panel = _panel(window, "conv3d_transpose")
    _type_into(window, panel.fields["stride"].editor.spins[0], "100000 100000 100000")
    assert _conv(window)["stride"] == [100000] * 3
    tip = window.canvas.views["prediction_6d"].view.toolTip()
    assert "above the memory limit" in tip
    assert window.canvas.shape_text("prediction_6d").startswith("⚠ a run needs about")


# ---------------------------------------------------------------------- Input follows its data
def _set_sample_shape(window, text):
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    panel = _panel(window, "data")
    line = panel.fields["sample_shape"].editor.findChild(QLineEdit)
    window.activateWindow()
    line.setFocus()
    line.selectAll()
    QTest.keyClicks(line, text)
    QTest.keyClick(line, Qt.Key.Key_Return)


def test_the_input_follows_a_new_sample_shape_in_one_undoable_edit(window):
    doc = window.canvas.doc
    _set_sample_shape(window, "2, 2, 8, 8, 4")
    assert doc.nodes["data"].params["sample_shape"] == [2, 2, 8, 8, 4]
    assert doc.nodes["input"].params["shape"] == [2, 2, 8, 8, 4]
    assert window.canvas.report.problems_of("input") == []
    window.action_undo.trigger()
    assert doc.nodes["data"].params["sample_shape"] == [2, 2, 8, 8, 3]
    assert doc.nodes["input"].params["shape"] == [2, 2, 8, 8, 3]
    window.action_redo.trigger()
    assert doc.nodes["input"].params["shape"] == [2, 2, 8, 8, 4]


def test_an_input_typed_to_another_shape_does_not_follow(window):
    doc = window.canvas.doc
    window.canvas.set_param("input", "shape", [2, 2, 8, 8, 5])  # not following any more
    _set_sample_shape(window, "2, 2, 8, 8, 4")
    assert doc.nodes["input"].params["shape"] == [2, 2, 8, 8, 5]
    assert "shape mismatch" in window.canvas.views["input"].view.toolTip()
