"""The ``train`` command: fit a graph with a Target and a Loss node, headless.

Prints one loss line per epoch (stdout) while the progress runs on stderr, then a summary; saves
the trained weights with their optimizer state (``--weights-out``, so ``--weights-in`` resumes
exactly) and the per-epoch losses (``--history``). Every output and the loss name are checked
before any work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import EXIT_OK, PROG, UsageError, with_source
from .output_files import checked_output, distinct_outputs, suffixed
from .progress import Progress

if TYPE_CHECKING:
    from conv3dt_studio.nodes.training import TrainingInterrupted, TrainResult


def cmd_train(args: argparse.Namespace) -> int:
    """``train``: fit the graph, print the losses, save the requested outputs."""
    from conv3dt_studio import nodes
    from conv3dt_studio.compute import ShapeError
    from conv3dt_studio.compute.losses import get_loss
    from conv3dt_studio.nodes.data_sources import load_file
    from conv3dt_studio.nodes.training import TrainingInterrupted, train_document

    from .run import with_data_file

    # each file its extension (added to a name without one), then no two options naming one file
    names = {
        "--weights-out": args.weights_out and suffixed(args.weights_out, ".npz", "--weights-out"),
        "--history": args.history and suffixed(args.history, ".json", "--history"),
    }
    distinct_outputs(names)
    weights_out = checked_output(names["--weights-out"], args.force, "--weights-out")
    history_out = checked_output(names["--history"], args.force, "--history")
    if args.loss is not None:
        get_loss(args.loss)  # a bad name fails before any work
    if args.data is not None and args.x is not None:
        raise UsageError("--data replaces the Data node, --x the Input's samples: give one")
    doc = nodes.load(args.graph)
    losses = doc.ids_with_role(nodes.LOSS)
    doc = with_data_file(doc, args, doc.feeder(losses[0], "prediction") if losses else None)
    x = None if args.x is None else load_file(args.x)
    y = None if args.y is None else load_file(args.y)
    progress = Progress(leave=False)
    interrupted: TrainingInterrupted | None = None
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
            progress=progress,
            on_epoch_end=lambda epoch, logs: _epoch_end(progress, epoch, logs),
        )
    except nodes.DocumentProblems as exc:
        raise with_source(exc, _with_files(args)) from None
    except ShapeError as exc:
        if args.x is None:
            raise
        # samples given as they are that the Input does not take: say which file they came from,
        # as a target of the wrong shape is reported
        raise UsageError(f"{_with_files(args)}: {exc}") from None
    except TrainingInterrupted as exc:
        interrupted = exc
    finally:
        progress.close()
    if interrupted is not None:  # the finished epochs are saved, then the error is reported
        _save_reached(interrupted, weights_out, history_out)
        raise interrupted
    print(_summary(result))
    if result.baseline is not None:
        print(_baseline_line(result))
    _save_outputs(result, weights_out, history_out)
    return EXIT_OK


def _with_files(args: argparse.Namespace) -> str:
    """The graph and the --x / --y files given with it, as messages name them."""
    given = [
        f"{opt} {name}" for opt, name in (("--x", args.x), ("--y", args.y)) if name is not None
    ]
    return " with ".join([str(args.graph), *given])


def _epoch_end(progress: Progress, epoch: int, logs: dict[str, float]) -> None:
    from conv3dt_studio.nodes.training import nothing_to_learn

    progress.write(_epoch_line(epoch, logs))
    warning = nothing_to_learn(epoch, logs)
    if warning:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def _epoch_line(epoch: int, logs: dict[str, float]) -> str:
    extra = f"  val_loss: {logs['val_loss']:.6g}" if "val_loss" in logs else ""
    return f"epoch {epoch + 1}: loss: {logs['loss']:.6g}{extra}"


def _summary(result: TrainResult) -> str:
    losses = result.history["loss"]
    if not losses:
        return "no epoch completed"
    return (
        f"trained {len(losses)} epochs in {result.seconds:.2f} s on "
        f"{result.graph.backend.name}; final loss {losses[-1]:.6g}"
    )


def _baseline_line(result: TrainResult) -> str:
    """The learned upsampling's loss beside that of repeating each input voxel (the
    nearest-neighbour baseline), on the same samples."""
    history = result.history
    which = "val_loss" if history.get("val_loss") else "loss"
    learned = history[which][-1] if history[which] else float("nan")
    return (
        f"nearest-neighbour baseline ({'validation' if which == 'val_loss' else 'training'} "
        f"samples): {result.baseline:.6g}; learned: {learned:.6g} "
        f"({learned / result.baseline:.2f}× the baseline)"
        if result.baseline
        else f"nearest-neighbour baseline: {result.baseline:.6g}; learned: {learned:.6g}"
    )


def _save_outputs(result: TrainResult, weights_out: Path | None, history_out: Path | None) -> None:
    from conv3dt_studio.nodes.files import atomic_write_text
    from conv3dt_studio.nodes.weights import save_weights

    if weights_out is not None:
        save_weights(weights_out, result.graph.layers)
        print(f"saved weights: {weights_out}")
    if history_out is not None:
        atomic_write_text(history_out, json.dumps(result.history, indent=2) + "\n")
        print(f"saved history: {history_out}")


def _save_reached(
    exc: TrainingInterrupted, weights_out: Path | None, history_out: Path | None
) -> None:
    """A training that failed part-way: save what its finished epochs reached (the history, and
    the weights at the end of the last of them), saying so, or say that nothing was saved."""
    from conv3dt_studio.nodes.files import atomic_write_text, save_npz

    done, last = exc.epochs_finished, exc.initial_epoch + exc.epochs_finished
    if weights_out is not None and exc.weights is not None:
        save_npz(weights_out, exc.weights)
        print(
            f"saved weights of epoch {last}, the last finished: {weights_out} (resume with "
            f"--weights-in {weights_out} --initial-epoch {last})"
        )
    elif weights_out is not None:
        print(f"weights not saved: no epoch finished ({weights_out} is not written)")
    if history_out is not None and done:
        atomic_write_text(history_out, json.dumps(exc.history, indent=2) + "\n")
        print(f"saved history of the {done} finished epoch(s): {history_out}")
    elif history_out is not None:
        print(f"history not saved: no epoch finished ({history_out} is not written)")
