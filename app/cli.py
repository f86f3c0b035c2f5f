"""The ``conv3dt-studio`` command line (also ``python -m conv3dt_studio``).

``run``, ``validate``, ``info`` and ``bench`` are headless: they import no Qt module, so they work on
a server, in a script or in CI. ``open`` (the default with no command) and ``snippet`` need Qt and
are imported only when asked for. Every user error is one line on stderr starting with
``conv3dt-studio: error:`` and exit status 2; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

PROG = "conv3dt-studio"
EXIT_OK, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 2, 130, 141
BAR_WIDTH = 30
QUIT_AFTER_ENV = "CONV3DT_STUDIO_QUIT_AFTER"  # read by app.main_window.launch
QT_PACKAGES = ("PySide6", "shiboken6", "NodeGraphQt", "Qt", "pyqtgraph")


class UsageError(Exception):
    """A command-line mistake: a usage error from the parser, or one found after parsing (e.g. an
    output file that already exists)."""


# ---------------------------------------------------------------------- parser
class CommandLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line in the CLI's own form: a
    :class:`UsageError` naming what was wrong and what is allowed, ending with a pointer to the
    command's ``--help``. Subcommands reject unknown arguments themselves (argparse would leave
    them to the top-level parser), so the message and the pointer name the right command."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return namespace, extras

    def _unrecognized(self, extras: list[str]) -> str:
        # argparse has no public way to list a parser's arguments
        options = [a for a in extras if a.startswith("-")]
        if options:
            allowed = [
                "/".join(a.option_strings)
                for a in self._actions
                if a.option_strings and "--help" not in a.option_strings
            ]
            return (
                f"unrecognized {_listed('option', options)}: `{self.prog}` accepts "
                f"{', '.join(allowed) or 'no options'}"
            )
        names = [a.metavar or a.dest for a in self._actions if not a.option_strings]
        takes = f"takes only {', '.join(names)}" if names else "takes no arguments, only options"
        return f"unexpected {_listed('argument', extras)}: `{self.prog}` {takes}"


def _listed(noun: str, words: list[str]) -> str:
    """'option `-x`' or 'options `-x`, `-y`'."""
    return f"{noun}{'s' if len(words) > 1 else ''} " + ", ".join(f"`{w}`" for w in words)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_mib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of MiB, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an error",
    )
    parser = CommandLineParser(
        prog=PROG,
        parents=[common],
        description="Build and run TimeDistributed(Conv3DTranspose) graphs. "
        "With no command, the editor opens.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a graph and print its Prediction 6D",
        description="Run a graph (.json, or a snippet .png with an embedded graph) headless and "
        "print the Prediction 6D info cluster and statistics.",
    )
    run.add_argument(
        "graph", nargs="?", metavar="GRAPH", help="graph file (default: the toolkit example)"
    )
    run.add_argument(
        "--prediction",
        metavar="NODE",
        help="id of the Prediction 6D node to compute (default: the graph's first)",
    )
    run.add_argument("--data", metavar="FILE", help=".npy or .npz file replacing the Data node")
    run.add_argument(
        "--array", metavar="NAME", default="", help="array name inside a --data .npz file"
    )
    run.add_argument(
        "--seed",
        type=_non_negative_int,
        metavar="N",
        help="seed for the data generator and the weights (same seed: identical output)",
    )
    run.add_argument(
        "--backend",
        choices=("auto", "numpy", "cupy"),
        default="auto",
        help="array backend (auto: CuPy when a GPU answers, else NumPy)",
    )
    run.add_argument("--weights", metavar="FILE.npz", help="weights saved by the editor or train")
    run.add_argument("--out", metavar="FILE.npy", help="save the prediction as .npy")
    run.add_argument("--force", action="store_true", help="let --out replace an existing file")
    run.add_argument(
        "--memory-limit",
        type=_positive_mib,
        metavar="MiB",
        help="refuse runs needing more (default: half the available memory)",
    )

    train = sub.add_parser(
        "train",
        parents=[common],
        help="train a graph that has a Target and a Loss node",
        description="Fit a trainable graph (Data -> ... -> Prediction 6D -> Loss <- Target) and "
        "print one loss line per epoch; the document's training settings apply unless overridden.",
    )
    train.add_argument("graph", metavar="GRAPH", help="graph file (.json or snippet .png)")
    train.add_argument("--x", metavar="FILE", help=".npy/.npz samples replacing the Data node")
    train.add_argument("--y", metavar="FILE", help=".npy/.npz targets replacing the Target node")
    train.add_argument("--epochs", type=_positive_int, metavar="N")
    train.add_argument("--batch-size", type=_positive_int, metavar="N")
    train.add_argument("--loss", metavar="NAME", help="loss replacing the Loss node's")
    train.add_argument("--seed", type=_non_negative_int, metavar="N")
    train.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="auto")
    train.add_argument(
        "--weights-in",
        metavar="FILE.npz",
        help="start from these weights (and optimizer state, so training resumes exactly)",
    )
    train.add_argument(
        "--initial-epoch",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="epochs already done (with --weights-in: continue the same shuffles)",
    )
    train.add_argument(
        "--weights-out", metavar="FILE.npz", help="save the trained weights and optimizer state"
    )
    train.add_argument("--history", metavar="FILE.json", help="save the per-epoch losses")
    train.add_argument("--force", action="store_true", help="let outputs replace existing files")

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a graph and print every node's output shape",
        description="Check a graph without running it: print each node's output shape, or every "
        "problem (exit status 2).",
    )
    validate.add_argument("graph", metavar="GRAPH")

    sub.add_parser(
        "info",
        parents=[common],
        help="version, backends and node types",
        description="Show the version, NumPy and CuPy availability and the node types.",
    )
    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark the compute core (`bench --help` for its options)",
    )

    snippet = sub.add_parser(
        "snippet",
        parents=[common],
        help="render a graph as a snippet PNG with the graph embedded (needs Qt)",
    )
    snippet.add_argument("graph", metavar="GRAPH.json")
    snippet.add_argument("-o", "--output", required=True, metavar="FILE.png")
    snippet.add_argument("--force", action="store_true", help="replace an existing FILE.png")

    open_ = sub.add_parser("open", parents=[common], help="open the editor (needs Qt)")
    open_.add_argument("file", nargs="?", metavar="FILE", help="graph to open")
    return parser


def _version() -> str:
    from conv3dt_studio import __version__

    return __version__


# ---------------------------------------------------------------------- output helpers
def _err(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _fmt_shape(shape) -> str:
    from conv3dt_studio.compute.layers import fmt_shape

    return fmt_shape(shape)


def _shape_cell(type_id: str, shape) -> str:
    """A node's output shape for the validate table; layer outputs are not tensors."""
    from conv3dt_studio import nodes

    if shape is not None:
        return _fmt_shape(shape)
    outputs = nodes.NODE_TYPES[type_id].outputs
    return "(layer)" if any(p.kind == nodes.LAYER for p in outputs) else "-"


class ProgressBar:
    """A one-line text bar on stderr, drawn only for multi-batch runs."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stderr
        self.drawn = False

    def __call__(self, fraction: float, message: str) -> None:
        if not message.startswith("batch ") or message.endswith(" 1/1"):
            return
        self.draw(fraction, message)

    def draw(self, fraction: float, message: str) -> None:
        filled = round(BAR_WIDTH * fraction)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        self.stream.write(f"\r[{bar}] {fraction:4.0%} {message}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


# ---------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    from conv3dt_studio import nodes
    from conv3dt_studio.nodes.data_sources import load_file
    from conv3dt_studio.nodes.files import save_npy

    graph = Path(args.graph) if args.graph else nodes.DEFAULT_EXAMPLE
    out = _check_output(args.out, args.force, "--out")
    doc = nodes.load(graph)
    _check_prediction(doc, args.prediction, graph)
    data = load_file(args.data, args.array) if args.data else None
    limit = None if args.memory_limit is None else int(args.memory_limit * 2**20)
    bar = ProgressBar()
    try:
        result = nodes.run_document(
            doc,
            backend=args.backend,
            seed=args.seed,
            data=data,
            weights=args.weights,
            progress=bar,
            memory_limit=limit,
            prediction_node=args.prediction,
        )
    except nodes.DocumentProblems as exc:
        raise _with_source(exc, graph) from None
    finally:
        bar.close()
    info, stats = result.info, result.stats()
    backend = result.graph.backend
    print(f"Prediction 6D `{result.prediction_node}` ({graph.name})")
    print(f"  name:        {info.name}")
    print(f"  graph index: {info.index}")
    print(f"  shape:       {_fmt_shape(info.shape)}")
    print(f"backend: {backend.name} ({backend.device_name})")
    print(
        f"min: {stats['min']:.6g}  max: {stats['max']:.6g}  "
        f"mean: {stats['mean']:.6g}  std: {stats['std']:.6g}"
    )
    print(f"NaN: {stats['nan']}  Inf: {stats['inf']}")
    print(f"elapsed: {result.seconds:.3f} s")
    if out is not None:
        if out.exists() and not args.force:  # appeared while running
            raise UsageError(f"`{out}` already exists: choose another --out or add --force")
        save_npy(out, result.prediction)
        print(f"saved: {out}")
    return EXIT_OK


def _check_prediction(doc, node_id: str | None, graph: Path) -> None:
    """``--prediction`` must name one of the graph's Prediction 6D nodes."""
    if node_id is None:
        return
    preds = [n.id for n in doc.nodes_of_type("prediction_6d")]
    if node_id not in preds:
        allowed = ", ".join(f"`{p}`" for p in preds) or "none"
        raise UsageError(
            f"Invalid value for --prediction: expected a Prediction 6D node of {graph.name} "
            f"(it has: {allowed}). Received: `{node_id}`"
        )


def _check_output(path: str | None, force: bool, option: str) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise UsageError(f"{option} `{out}` is a folder, not a file")
    if out.exists() and not force:
        raise UsageError(f"`{out}` already exists: choose another {option} or add --force")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot save `{out}`: folder `{folder}` does not exist")
    return out


def cmd_train(args: argparse.Namespace) -> int:
    import json

    from conv3dt_studio import nodes
    from conv3dt_studio.compute.losses import get_loss
    from conv3dt_studio.nodes.data_sources import load_file
    from conv3dt_studio.nodes.files import atomic_write_text
    from conv3dt_studio.nodes.training import train_document
    from conv3dt_studio.nodes.weights import save_weights

    weights_out = _check_output(args.weights_out, args.force, "--weights-out")
    history_out = _check_output(args.history, args.force, "--history")
    if args.loss is not None:
        get_loss(args.loss)  # a bad name fails before any work
    doc = nodes.load(args.graph)
    x = load_file(args.x) if args.x else None
    y = load_file(args.y) if args.y else None
    bar = TrainProgress()

    def epoch_line(epoch: int, logs: dict) -> None:
        bar.clear()
        extra = f"  val_loss: {logs['val_loss']:.6g}" if "val_loss" in logs else ""
        print(f"epoch {epoch + 1}: loss: {logs['loss']:.6g}{extra}", flush=True)

    try:
        result = train_document(
            doc,
            backend=args.backend,
            seed=args.seed,
            x=x,
            y=y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            loss=args.loss,
            weights_in=args.weights_in,
            initial_epoch=args.initial_epoch,
            progress=bar,
            on_epoch_end=epoch_line,
        )
    except nodes.DocumentProblems as exc:
        raise _with_source(exc, args.graph) from None
    finally:
        bar.clear()
    losses = result.history["loss"]
    print(
        f"trained {len(losses)} epochs in {result.seconds:.2f} s on "
        f"{result.graph.backend.name}; final loss {losses[-1]:.6g}"
        if losses
        else "no epoch completed"
    )
    if weights_out is not None:
        save_weights(weights_out, result.graph.layers)
        print(f"saved weights: {weights_out}")
    if history_out is not None:
        atomic_write_text(history_out, json.dumps(result.history, indent=2) + "\n")
        print(f"saved history: {history_out}")
    return EXIT_OK


class TrainProgress(ProgressBar):
    """The progress bar for training: every batch message, cleared before each epoch line."""

    def __call__(self, fraction: float, message: str) -> None:
        self.draw(fraction, message + "  ")

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (BAR_WIDTH + 40) + "\r")
            self.stream.flush()
            self.drawn = False


def cmd_validate(args: argparse.Namespace) -> int:
    from conv3dt_studio import nodes

    doc = nodes.load(args.graph)
    report = nodes.validate(doc)
    if not report.ok:
        raise _with_source(nodes.DocumentProblems(report.problems), args.graph)
    rows = [
        (nid, doc.nodes[nid].type, _shape_cell(doc.nodes[nid].type, report.shapes[nid]))
        for nid in report.order
    ]
    widths = [max(len(r[i]) for r in [("node", "type", "output shape"), *rows]) for i in range(2)]
    print(f"{'node':<{widths[0]}}  {'type':<{widths[1]}}  output shape")
    for nid, type_id, shape in rows:
        print(f"{nid:<{widths[0]}}  {type_id:<{widths[1]}}  {shape}")
    print(f"{args.graph}: OK ({len(rows)} nodes, {len(doc.links)} links)")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from conv3dt_studio import compute, nodes

    print(f"{PROG} {_version()}")
    print(f"Python: {platform.python_version()}")
    print(f"NumPy: {np.__version__}")
    print(f"CuPy: {compute.cupy_status()}")
    print("node types:")
    width = max(len(t) for t in nodes.NODE_TYPE_IDS)
    for t in nodes.NODE_TYPES.values():
        print(f"  {t.type_id:<{width}}  v{t.version}  {t.title} ({t.category})")
    return EXIT_OK


def cmd_bench(argv: list[str]) -> int:
    bench = _optional_module("conv3dt_studio.compute.benchmark", "the `bench` command")
    from conv3dt_studio.nodes.files import atomic_write_text

    return _exit_code(
        lambda a: bench.main(a, parser_class=CommandLineParser, write_text=atomic_write_text), argv
    )


def cmd_snippet(args: argparse.Namespace) -> int:
    from conv3dt_studio import nodes

    args.output = str(_check_output(_png_name(args.output), args.force, "-o"))
    nodes.load(args.graph)  # file and format errors reported here, in the CLI's own form
    module = _optional_module("conv3dt_studio.app.editor.snippet_export", "the `snippet` command")
    return _exit_code(module.main, args)


def _png_name(path: str) -> str:
    """A snippet's file name: `.png` is added to a name without an extension (as the editor's
    Export Snippet PNG does); another extension would hide the PNG from `open` and the file
    dialogs, so it is refused."""
    suffix = Path(path).suffix
    if not suffix:
        return path + ".png"
    if suffix.lower() != ".png":
        raise UsageError(
            "Invalid value for -o: expected a .png file (a name without an extension gets "
            f".png). Received: `{path}`"
        )
    return path


def cmd_open(path: str | None) -> int:
    if sys.platform.startswith("linux") and not any(
        os.environ.get(k) for k in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):  # Qt would abort with several lines of its own
        raise UsageError(
            "the editor needs a display and none was found (DISPLAY and WAYLAND_DISPLAY are "
            "unset); the headless commands run, train and validate work without one"
        )
    from conv3dt_studio.app.qt_platform import platform_problem

    _check_quit_after(os.environ.get(QUIT_AFTER_ENV, ""))
    problem = platform_problem()
    if problem:  # Qt would abort with a message naming the wrong library
        raise UsageError(problem)
    module = _optional_module("conv3dt_studio.app.editor.main_window", "the editor")
    return _exit_code(module.launch, path)


def _check_quit_after(value: str) -> None:
    """``CONV3DT_STUDIO_QUIT_AFTER`` (seconds until the editor quits by itself, for smoke tests)."""
    try:
        ok = not value or float(value) >= 0
    except ValueError:
        ok = False
    if not ok:
        raise UsageError(
            f"Invalid value for `{QUIT_AFTER_ENV}`: expected a number of seconds >= 0. "
            f"Received: {value!r}"
        )


def _exit_code(function: Callable, argument) -> int:
    """Call another module's entry point; its return value or SystemExit becomes our status."""
    try:
        code = function(argument)
    except SystemExit as exc:  # e.g. its own argparse's --help or usage error
        code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)  # sys.exit("message") prints its message
    return EXIT_ERROR


def _optional_module(name: str, what: str):
    """Import a module written elsewhere in the project; a clear error when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:  # ModuleNotFoundError, or a Qt library that fails to load
        if isinstance(exc, ModuleNotFoundError) and exc.name == name:
            raise UsageError(f"{what} is not available in this build (no module `{name}`)") from exc
        if (exc.name or "").split(".")[0] in QT_PACKAGES:
            raise UsageError(
                f"{what} needs Qt (PySide6, NodeGraphQt), which failed to load: {exc}"
            ) from exc
        raise


def _with_source(exc, source: str):
    exc.source = str(source)
    return exc


# ---------------------------------------------------------------------- errors
def _error_lines(exc: BaseException) -> list[str]:
    """One line per problem, each naming the file, node and parameter where known."""
    problems = getattr(exc, "problems", None)
    if problems:
        source = getattr(exc, "source", None)
        return [f"{source}: {p}" if source else str(p) for p in problems]
    if isinstance(exc, OSError) and exc.filename:
        return [f"`{exc.filename}`: {exc.strerror or exc}"]
    text = str(exc) or type(exc).__name__
    return [" ".join(text.split())]


def _guarded(action: Callable[[], int], debug: bool) -> int:
    from conv3dt_studio.compute import Conv3DTStudioError

    try:
        return action()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `conv3dt-studio validate g.json | head -1`
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except (Conv3DTStudioError, UsageError, OSError) as exc:
        return _report(exc, debug)


def _report(exc: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    for line in _error_lines(exc):
        _err(line)
    return EXIT_ERROR


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (tests)
        pass


def _split_bench(argv: Sequence[str]) -> tuple[bool, list[str]] | None:
    """``[--debug] bench ARGS...`` -> (debug, ARGS): bench parses its own options; ``--debug``
    may also come after ``bench``, as for every command."""
    debug = False
    for i, token in enumerate(argv):
        if token == "--debug":
            debug = True
        elif token == "bench":
            rest = list(argv[i + 1 :])
            return debug or "--debug" in rest, [t for t in rest if t != "--debug"]
        else:
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``conv3dt-studio``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    bench = _split_bench(argv)
    if bench is not None:
        debug, rest = bench
        return _guarded(lambda: cmd_bench(rest), debug)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help or --version (already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except UsageError as exc:
        return _report(exc, "--debug" in argv)
    debug = getattr(args, "debug", False)
    commands: dict[str | None, Callable[[], int]] = {
        "run": lambda: cmd_run(args),
        "train": lambda: cmd_train(args),
        "validate": lambda: cmd_validate(args),
        "info": lambda: cmd_info(args),
        "snippet": lambda: cmd_snippet(args),
        "open": lambda: cmd_open(args.file),
        None: lambda: cmd_open(None),
    }
    return _guarded(commands[args.command], debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
