"""Regenerate docs/screenshot.png: the main window on the toolkit example after a run (offscreen;
the inspector's Volume tab, Live preview on);
with --train, docs/training.png: the teacher/student example after training (learning curve);
with --upsample, docs/upsample_2x.png: the upsample_2x example trained, then run (the inspector
shows input, prediction and target side by side).

python scripts/screenshot.py [--train | --upsample] [--output FILE.png] [--backend auto]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", action="store_true", help="train the teacher/student example")
    parser.add_argument(
        "--upsample", action="store_true", help="train and run the upsample_2x example"
    )
    parser.add_argument("--output", default=None)
    parser.add_argument("--backend", default="auto", choices=("auto", "numpy", "cupy"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=1000)
    args = parser.parse_args()
    name = (
        "training.png" if args.train else "upsample_2x.png" if args.upsample else "screenshot.png"
    )
    args.output = args.output or str(ROOT / "docs" / name)

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    from conv3dt_studio.app.editor.main_window import MainWindow, apply_style

    apply_style(app)
    from conv3dt_studio import nodes

    example = (
        nodes.EXAMPLES / "teacher_student.json"
        if args.train
        else nodes.EXAMPLES / "upsample_2x.json"
        if args.upsample
        else None
    )
    window = MainWindow(example, offer_recovery=False)
    window.resize(args.width, args.height)
    window.backend_selector.setCurrentText(args.backend)
    # never ask about unsaved changes (the trained weights are unsaved work, and quitting closes
    # the window: its modal question waited for an answer nobody gives here)
    window.dialogs.save_changes = lambda *_: "discard"  # type: ignore[method-assign]
    window.show()
    outcome: dict[str, str] = {}

    def finished(_result) -> None:
        window.canvas.select("conv3d_transpose")
        if args.train:
            window.docks["training_panel"].raise_()
        elif not args.upsample:  # the main picture: the volume views and a live thumbnail
            window.inspector.views.setCurrentIndex(1)
            window.action_live_preview.setChecked(True)
        QTimer.singleShot(600, grab)

    def grab() -> None:
        window.canvas.fit()
        app.processEvents()
        out = Path(args.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out), "PNG")
        outcome["path"] = str(out)
        app.quit()

    def failed(text: str) -> None:
        outcome["error"] = text
        app.quit()

    def trained(_result) -> None:  # then run with the trained weights: the inspector shows them
        window.canvas.select("prediction_6d")
        QTimer.singleShot(100, window.run)

    if args.upsample:
        window.training.train_finished.connect(trained)
        window.training.train_failed.connect(failed)
        window.run_finished.connect(finished)
        window.run_failed.connect(failed)
        QTimer.singleShot(200, window.training.train)
    elif args.train:
        window.training.train_finished.connect(finished)
        window.training.train_failed.connect(failed)
        QTimer.singleShot(200, window.training.train)
    else:
        window.run_finished.connect(finished)
        window.run_failed.connect(failed)
        QTimer.singleShot(200, window.run)
    app.exec()
    window.files.forget_changes()
    window.close()
    if "error" in outcome:
        print(f"error: the run failed: {outcome['error']}", file=sys.stderr)
        return 1
    print(f"wrote {outcome['path']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
