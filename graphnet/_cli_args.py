"""The ``graphnet`` command's arguments: :func:`build_parser`, and the one-line
:class:`CommandError` a bad argument (exit status 2) or a failed command
(status 1) becomes. The commands themselves are :mod:`graphnet.cli`'s.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ._version import __version__
from .demo import DEFAULT_EPOCHS, DEFAULT_OUT
from .metrics import METRICS
from .optimizers import OPTIMIZERS
from .render import FORMATS, RANKDIRS

__all__ = ["PROG", "CommandError", "build_parser"]

PROG = "graphnet"


class CommandError(Exception):
    """A failure to report as one line, with the exit status to return."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line and exit status 2 (no usage dump)."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        raise CommandError(f"{message} (see '{self.prog} --help')", status=2)


def _number(parse: Callable[[str], float], accept: Callable[[float], bool], expected: str):
    """An argparse type: ``parse`` the text, then ``accept`` the value, else say what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return convert


_positive = _number(int, lambda v: v >= 1, "a positive integer")
_seed = _number(int, lambda v: v >= 0, "an integer >= 0")
_rate = _number(float, lambda v: 0 < v < float("inf"), "a positive number")
_fraction = _number(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")


def build_parser() -> argparse.ArgumentParser:

    parser = _Parser(
        prog=PROG,
        description="graphnet: a DAG neural-graph engine on numpy.",
        epilog="Run 'graphnet COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"graphnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    demo = commands.add_parser(
        "demo",
        help="train a two-input, two-output graph on scikit-learn's digits",
        description=(
            "Build a two-input, two-output graph on scikit-learn's digits (the top and "
            "bottom halves of each image as inputs; the digit and whether it is even as "
            "outputs), print its summary, train it, print the held-out accuracy per output, "
            "and write summary.txt, model.json, model.svg, model.png and history.png."
        ),
    )
    demo.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                      help=f"folder for the files (default: {DEFAULT_OUT})")
    demo.add_argument("--epochs", metavar="N", type=_positive, default=DEFAULT_EPOCHS,
                      help=f"training epochs (default: {DEFAULT_EPOCHS})")
    demo.add_argument("--seed", metavar="S", type=_seed, default=0,
                      help="seed for the split, the weights and the shuffling (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    readable = "a spec (.json, .yaml, .yml) or a saved model (.gnet)"
    summary = commands.add_parser(
        "summary",
        help="print the summary table of a spec or saved model",
        description=f"Print the summary table of FILE: {readable}.",
    )
    summary.add_argument("file", metavar="FILE")

    render = commands.add_parser(
        "render",
        help="draw the diagram of a spec or saved model",
        description=(
            f"Draw the diagram of FILE ({readable}) into OUT; OUT's suffix picks the format: "
            f"{', '.join('.' + f for f in FORMATS)} (.dot, .gv need no Graphviz), or .html (a page to explore)."
        ),
    )
    render.add_argument("file", metavar="FILE")
    render.add_argument("-o", "--output", metavar="OUT", required=True, help="the file to write")
    render.add_argument("--rankdir", choices=RANKDIRS, default="LR",
                        help="direction of the data flow (default: LR, left to right)")
    _add_render_inside(render)

    train = commands.add_parser(
        "train",
        help="train a spec or saved model on arrays from a .npz file",
        description=(
            f"Train FILE ({readable}; a saved model continues with its optimizer state) on "
            "DATA, a .npz archive with one array per input and per output node, keyed by "
            "node name; write the trained model to OUT (.gnet)."
        ),
    )
    train.add_argument("file", metavar="FILE")
    train.add_argument("--data", metavar="DATA", required=True, help="training arrays (.npz)")
    train.add_argument("--out", metavar="OUT", required=True, help="the model file to write (.gnet)")
    train.add_argument("--epochs", metavar="N", type=_positive, default=10, help="epochs (default: 10)")
    train.add_argument("--batch-size", metavar="B", type=_positive, default=32,
                       help="rows per batch (default: 32)")
    train.add_argument("--optimizer", metavar="NAME", default=None, choices=sorted(OPTIMIZERS),
                       help=f"optimizer: {', '.join(sorted(OPTIMIZERS))} (default: a saved model's own, else adam)")
    train.add_argument("--lr", metavar="RATE", type=_rate, default=None,
                       help="learning rate (default: the optimizer's)")
    train.add_argument("--validation-split", metavar="F", type=_fraction, default=0.0,
                       help="fraction of the rows held out for validation (default: 0)")
    train.add_argument("--metrics", metavar="NAME", nargs="+", default=(), choices=sorted(METRICS),
                       help=f"metrics to report: {', '.join(sorted(METRICS))}")
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    predict = commands.add_parser(
        "predict",
        help="predict with a saved model on arrays from a .npz file",
        description=(
            "Run MODEL (.gnet) on DATA, a .npz archive with one array per input node keyed by "
            "node name (arrays named after output nodes are ignored, so a training file "
            "works too); write OUT: a CSV table (.csv: a header row, one column per output unit, "
            "named OUTPUT or OUTPUT_k) or a .npz archive with one array per output node."
        ),
    )
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("--data", metavar="DATA", required=True, help="input arrays (.npz)")
    predict.add_argument("--out", metavar="OUT", required=True, help="the predictions to write (.csv or .npz)")
    predict.add_argument("--batch-size", metavar="B", type=_positive, default=None,
                         help="rows per chunk (default: 4096)")
    _add_check(commands, readable)
    diff = commands.add_parser("diff", help="show what changed between two specs or saved models", description=(
        f"Compare A and B (each {readable}): nodes and synapses added, removed and changed, and for two "
        "saved models the norm and relative change of every parameter in both, in 80 columns; -o OUT also "
        f"draws both graphs' union ({', '.join('.' + f for f in FORMATS)}), what changed in colour."))
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")
    diff.add_argument("-o", "--output", metavar="OUT", help="also draw the diff into OUT")
    return parser


def _add_render_inside(render) -> None:
    """``render``'s options for seeing inside the model."""
    render.add_argument("--stats", metavar="DATA", default=None,
                        help="annotate the diagram with statistics on the arrays of DATA (.npz, keyed by "
                             "node name; with every output's targets, gradient norms too)")
    render.add_argument("--collapse", action="store_true",
                        help="draw each chain of like hidden nodes as one box")


def _add_check(commands, readable: str) -> None:
    check = commands.add_parser(
        "check",
        help="check the gradients of a spec or saved model against central differences",
        description=(
            f"Compare the backward pass of FILE ({readable}) with float64 central differences "
            "on the first rows of DATA, a .npz archive with one array per input and per output "
            "node keyed by node name. Prints one line per parameter; exits with status 1 when "
            "a gradient disagrees."
        ),
    )
    check.add_argument("file", metavar="FILE")
    check.add_argument("--data", metavar="DATA", required=True, help="inputs and targets (.npz)")
    check.add_argument("--rows", metavar="N", type=_positive, default=16,
                       help="rows of DATA to check on (default: 16)")
    check.add_argument("--eps", metavar="E", type=_rate, default=1e-6,
                       help="central-difference step (default: 1e-6)")
    check.add_argument("--tolerance", metavar="T", type=_rate, default=1e-6,
                       help="largest relative error that passes (default: 1e-6); gradients too small "
                            "for the differences to resolve at T count as agreeing, so the errors "
                            "shown depend on T")
    check.add_argument("--samples", metavar="K", type=_positive, default=None,
                       help="check K random entries per parameter instead of all of them")
