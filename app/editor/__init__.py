"""The desktop editor: PySide6 + NodeGraphQt + pyqtgraph. Everything that imports Qt lives in this
package; :func:`conv3dt_studio.app.editor.main_window.launch` starts it."""
