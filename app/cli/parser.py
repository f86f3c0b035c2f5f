"""The command line's grammar: every command, its arguments and their value types.

:class:`CommandLineParser` turns argparse's usage errors into one :class:`UsageError` line naming
what was wrong and what is allowed, ending with a pointer to the command's ``--help``. ``bench``
appears here only by name: it parses its own options (:mod:`.bench`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from .errors import EXIT_ERROR, PROG, UsageError

BACKENDS = ("auto", "numpy", "cupy")
Subparsers = argparse._SubParsersAction  # argparse names no public type for it


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
        names = [str(a.metavar or a.dest) for a in self._actions if not a.option_strings]
        takes = f"takes only {', '.join(names)}" if names else "takes no arguments, only options"
        return f"unexpected {_listed('argument', extras)}: `{self.prog}` {takes}"


def _listed(noun: str, words: list[str]) -> str:
    """'option `-x`' or 'options `-x`, `-y`'."""
    return f"{noun}{'s' if len(words) > 1 else ''} " + ", ".join(f"`{w}`" for w in words)


# ---------------------------------------------------------------------- value types
SEED_MAX = 2**31 - 1  # seeds are 32-bit, as everywhere in a graph


def seed(text: str) -> int:
    """An argparse type: a seed, an integer from 0 to 2**31-1."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer from 0 to {SEED_MAX}, got {text!r}")
    return value


def _int_at_least(text: str, minimum: int, words: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
    return value


def int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: an integer from ``minimum`` to ``maximum``, in the words of the other
    bounded counts ("expected an integer >= 1 and <= 10000, got '0'")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum} and <= {maximum}, got {text!r}"
            )
        return value

    # argparse names the type in some messages
    parse.__name__ = f"integer from {minimum} to {maximum}"
    return parse


def input_file(text: str) -> str:
    """An argparse type: the name of a file to read, refused when empty (an empty name would
    otherwise count as not given, or as the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("give a file name. Received: an empty name")
    return text


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "a non-negative integer")


def training_setting(name: str) -> Callable[[str], int]:
    """An argparse type for the integer training setting ``name`` (``epochs``, ``batch_size``):
    its bounds and its words are those of its one declaration, the document's training schema."""
    from conv3dt_studio.nodes.settings import TRAINING_SCHEMA

    param = TRAINING_SCHEMA[name]

    def parse(text: str) -> int:
        try:
            return int(param.validate(int(text)))
        except ValueError:  # not an integer, or outside the declared bounds (a ParameterError)
            raise argparse.ArgumentTypeError(f"expected {param.describe()}, got {text!r}") from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def positive_mib(text: str) -> float:
    """An argparse type: a finite number of MiB > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of MiB, got {text!r}")
    return value


# ---------------------------------------------------------------------- the parser
def build_parser() -> argparse.ArgumentParser:
    """The ``conv3dt-studio`` parser; ``--debug`` is accepted before or after the command."""
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
    parser.add_argument("--version", action="version", version=f"{PROG} {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (
        _add_run,
        _add_train,
        _add_validate_and_info,
        _add_interop,
        _add_bench,
        _add_qt_commands,
    ):
        add(sub, common)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    """``parser``'s arguments, or the exit status when it printed ``--help`` or ``--version``
    (argparse's SystemExit); usage errors raise :class:`UsageError`."""
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR


def version() -> str:
    """The installed version of Conv3DT Studio."""
    from conv3dt_studio import __version__

    return __version__


def _add_run(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a graph and print its Prediction 6D",
        description="Run a graph (.json, or a snippet .png with an embedded graph) headless and "
        "print the Prediction 6D info cluster and statistics.",
    )
    run.add_argument(
        "graph",
        nargs="?",
        type=input_file,
        metavar="GRAPH",
        help="graph file (default: the toolkit example)",
    )
    run.add_argument(
        "--prediction",
        metavar="NODE",
        help="id of the Prediction 6D node to compute (default: the graph's first)",
    )
    _add_data(run)
    run.add_argument(
        "--seed",
        type=seed,
        metavar="N",
        help="seed for the data generator and the weights (same seed: identical output)",
    )
    run.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="array backend (auto: CuPy when a GPU answers, else NumPy)",
    )
    run.add_argument(
        "--weights",
        type=input_file,
        metavar="FILE.npz",
        help="weights saved by the editor or train",
    )
    run.add_argument(
        "--out",
        metavar="FILE.npy",
        help="save the prediction as .npy (added to a name without a suffix)",
    )
    run.add_argument("--force", action="store_true", help="let --out replace an existing file")
    run.add_argument(
        "--memory-limit",
        type=positive_mib,
        metavar="MiB",
        help="refuse runs needing more (default: half the available memory)",
    )


def _add_data(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--data",
        type=input_file,
        metavar="FILE",
        help="samples replacing the Data node (Resamples after it still apply): .npy/.npz, a "
        "TIFF stack, a video or a folder of images",
    )
    command.add_argument(
        "--array", metavar="NAME", default="", help="array name inside a --data .npz file"
    )
    command.add_argument(
        "--axes",
        metavar="AXES",
        default="",
        help="the --data file's axes in order, from B T C Z Y X, e.g. TZCYX (default: the "
        "file's own; a missing axis has length 1)",
    )


def _add_train(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    train = sub.add_parser(
        "train",
        parents=[common],
        help="train a graph that has a Target and a Loss node",
        description="Fit a trainable graph (Data -> ... -> Prediction 6D -> Loss <- Target) and "
        "print one loss line per epoch; the document's training settings apply unless overridden.",
    )
    train.add_argument(
        "graph", type=input_file, metavar="GRAPH", help="graph file (.json or snippet .png)"
    )
    _add_data(train)
    train.add_argument(
        "--x",
        type=input_file,
        metavar="FILE",
        help=".npy/.npz samples fed to the Input as they are",
    )
    train.add_argument(
        "--y", type=input_file, metavar="FILE", help=".npy/.npz targets replacing the Target node"
    )
    train.add_argument("--epochs", type=training_setting("epochs"), metavar="N")
    train.add_argument("--batch-size", type=training_setting("batch_size"), metavar="N")
    train.add_argument("--loss", metavar="NAME", help="loss replacing the Loss node's")
    train.add_argument("--seed", type=seed, metavar="N")
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument(
        "--weights-in",
        type=input_file,
        metavar="FILE.npz",
        help="start from these weights (and optimizer state, so training resumes exactly)",
    )
    train.add_argument(
        "--initial-epoch",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="epochs already done (with --weights-in: continue the same shuffles)",
    )
    train.add_argument(
        "--weights-out", metavar="FILE.npz", help="save the trained weights and optimizer state"
    )
    train.add_argument("--history", metavar="FILE.json", help="save the per-epoch losses")
    train.add_argument("--force", action="store_true", help="let outputs replace existing files")


def _add_validate_and_info(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a graph and print every node's output shape",
        description="Check a graph without running it: print each node's output shape, or every "
        "problem (exit status 2).",
    )
    validate.add_argument("graph", type=input_file, metavar="GRAPH")
    summary = sub.add_parser(
        "summary",
        parents=[common],
        help="per layer: output shape, parameters, multiply-adds, memory (as Keras)",
        description="Print the model summary of the chain into a Prediction 6D, as Keras's "
        "model.summary(): per layer the output shape, parameter count, multiply-adds and "
        "activation memory, and the totals; a graph with problems gives one line per problem "
        "(exit status 2).",
    )
    summary.add_argument("graph", type=input_file, metavar="GRAPH")
    summary.add_argument(
        "--prediction", metavar="NODE", help="the Prediction 6D node (default: the first)"
    )
    sub.add_parser(
        "info",
        parents=[common],
        help="version, backends and node types",
        description="Show the version, NumPy and CuPy availability and the node types.",
    )


def _add_interop(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    from conv3dt_studio.nodes.interop.common import FORMATS  # light: no format library

    export = sub.add_parser(
        "export",
        parents=[common],
        help="export a graph to ONNX, Keras, PyTorch or a Python script",
        description="Write the chain of one Prediction 6D with the weights `run` would use "
        "(--weights, else the graph's embedded weights, else seeded): an .onnx file, a .keras "
        "file, a PyTorch folder (model.py, weights.safetensors) or a Python script with its "
        ".npz. See docs/interop.md.",
    )
    export.add_argument("graph", type=input_file, metavar="GRAPH")
    export.add_argument("--format", required=True, choices=FORMATS)
    export.add_argument("-o", "--output", required=True, metavar="PATH")
    export.add_argument("--weights", type=input_file, metavar="FILE.npz", help="weights to export")
    export.add_argument("--prediction", metavar="NODE", help="the Prediction 6D to export")
    export.add_argument("--seed", type=seed, help="override the graph's seed")
    export.add_argument("--force", action="store_true", help="replace an existing PATH")
    import_ = sub.add_parser(
        "import",
        parents=[common],
        help="turn a Keras, PyTorch or exported ONNX model into a graph (weights embedded)",
        description="Read a .keras model made of TimeDistributed(Conv3DTranspose) layers, an "
        "exported PyTorch folder, or its .safetensors / .pt weights, or an .onnx file the studio "
        "exported, and save it as a graph.",
    )
    import_.add_argument("model", type=input_file, metavar="MODEL")
    import_.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="GRAPH.json",
        help="the graph to write (.json added to a name without a suffix)",
    )
    import_.add_argument("--force", action="store_true", help="replace an existing GRAPH.json")


def _add_bench(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    # listed for --help only: `bench` parses its own options (dispatch hands it the rest)
    sub.add_parser(
        "bench",
        add_help=False,
        help="benchmark the compute core (`bench --help` for its options)",
    )


def _add_qt_commands(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    snippet = sub.add_parser(
        "snippet",
        parents=[common],
        help="render a graph as a snippet PNG with the graph embedded (needs Qt)",
    )
    snippet.add_argument("graph", type=input_file, metavar="GRAPH.json")
    snippet.add_argument("-o", "--output", required=True, metavar="FILE.png")
    snippet.add_argument("--force", action="store_true", help="replace an existing FILE.png")
    open_ = sub.add_parser("open", parents=[common], help="open the editor (needs Qt)")
    open_.add_argument("file", nargs="?", type=input_file, metavar="FILE", help="graph to open")
