"""The ``graphnet`` command.

::

    graphnet demo [--out DIR] [--epochs N] [--seed S]
    graphnet summary FILE
    graphnet render FILE -o OUT.{svg,png,pdf,dot,gv,html} [--rankdir LR|TB|RL|BT] [--stats DATA] [--collapse]
    graphnet check FILE --data DATA.npz [--rows N] [--eps E] [--tolerance T]
    graphnet train FILE --data TRAIN.npz --out MODEL.gnet [--epochs N] [--batch-size B] ...
    graphnet predict MODEL.gnet --data X.npz --out PRED.{csv,npz} [--batch-size B]
    graphnet diff A B [-o OUT]

``FILE`` is a spec (``.json``, ``.yaml``/``.yml``) or a saved model
(``.gnet``); :func:`load_model` picks the reader by suffix. Data files are
``.npz`` archives of arrays keyed by input and output node names, read by
:func:`graphnet._npz.read_arrays` (never unpickling, sizes bounded by the
bytes present). ``--out`` is checked before any work, and an ``--out`` that
is one of the command's inputs is refused, so nothing the user has is
replaced by mistake. Every failure is one line on stderr
(``graphnet: error: ...``) and a non-zero exit status: 2 for bad arguments,
1 for anything else, 130 when interrupted. Set ``GRAPHNET_TRACEBACK=1`` to
see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._files import atomic_write, check_output
from ._npz import read_arrays
from ._progress import format_logs, is_terminal, terminal_width, wrap_logs
from ._tables import write_csv
from ._text import preview
from ._version import __version__
from .demo import DEFAULT_EPOCHS, DEFAULT_OUT, run
from .diff import GraphDiff
from .errors import GraphError, ModelFileError, ShapeError
from .gradient_check import check_gradients
from .graph import Graph
from .render import FORMATS, RANKDIRS
from .saving import load

__all__ = ["main", "load_model", "build_parser", "CommandError"]

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


def _spec(path: Path):
    return Graph.from_spec(path)


def _saved(path: Path):
    return load(path)


#: Readers by file suffix: a spec or a saved model in, a Graph out.
LOADERS = {".json": _spec, ".yaml": _spec, ".yml": _spec, ".gnet": _saved}


def load_model(path: str | os.PathLike):
    """The Graph described by a spec (``.json``, ``.yaml``, ``.yml``) or a saved model (``.gnet``).

    Raises
    ------
    CommandError
        For an unknown suffix or a missing file.
    ModelFileError
        For a file that cannot be read or does not describe a valid graph.
    """
    path = Path(os.fspath(path))
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise CommandError(
            f"{path}: cannot tell what this file is from its suffix {path.suffix!r}; "
            f"expected one of {sorted(LOADERS)}"
        )
    if not path.is_file():
        raise CommandError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return loader(path)


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
    train.add_argument("--optimizer", metavar="NAME", default=None,
                       help="optimizer name (default: a saved model's own, else adam)")
    train.add_argument("--lr", metavar="RATE", type=_rate, default=None,
                       help="learning rate (default: the optimizer's)")
    train.add_argument("--validation-split", metavar="F", type=_fraction, default=0.0,
                       help="fraction of the rows held out for validation (default: 0)")
    train.add_argument("--metrics", metavar="NAME", nargs="+", default=(),
                       help="metrics to report, e.g. accuracy")
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
                       help="largest relative error that passes (default: 1e-6)")
    check.add_argument("--samples", metavar="K", type=_positive, default=None,
                       help="check K random entries per parameter instead of all of them")


def _demo(args) -> int:

    result = run(out=args.out, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 1)
    names = ", ".join(p.name for p in result.written)
    print(f"\nWrote {names} into {args.out}/")
    for problem in result.problems:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def _summary(args) -> int:
    load_model(args.file).summary()
    return 0


def _render(args) -> int:
    graph = load_model(args.file)
    stats = None if args.stats is None else _statistics(graph, args.stats)
    path = graph.render(args.output, rankdir=args.rankdir, stats=stats, collapse=args.collapse)
    print(f"Wrote {path}")
    return 0


def _statistics(graph, data: str):
    """``graph.statistics`` on DATA's arrays; targets too when every output has them."""
    found, arrays = _arrays(data, "the statistics data", graph.inputs + graph.outputs)
    x = _keyed(found, arrays, graph.inputs, "input", data, ignore=graph.outputs)
    y = None
    if all(name in arrays for name in graph.outputs):
        y = _keyed(found, arrays, graph.outputs, "output", data, ignore=graph.inputs)
    with _naming(data):
        stats = graph.statistics(x, y)
    dead = [n for n, s in stats.nodes.items() if s.dead_units]
    print(f"Statistics on {stats.rows} rows" + (f", loss {stats.loss:.4g}" if y is not None else
          " (without targets for every output, so no gradient norms)")
          + (f"; dead units in {', '.join(dead)}" if dead else ""))
    return stats


def _check(args) -> int:


    graph = load_model(args.file)
    found, arrays = _arrays(args.data, "the data", graph.inputs + graph.outputs)
    x = _keyed(found, arrays, graph.inputs, "input", args.data, ignore=graph.outputs)
    y = _keyed(found, arrays, graph.outputs, "output", args.data, ignore=graph.inputs)
    x = {k: v[: args.rows] for k, v in x.items()}
    y = {k: v[: args.rows] for k, v in y.items()}
    with _naming(args.data):
        report = check_gradients(graph, x, y, eps=args.eps, tolerance=args.tolerance, samples=args.samples)
    print(report.text(width=min(100, max(60, shutil.get_terminal_size().columns))))
    if not report.ok:
        worst = report.worst
        raise CommandError(f"{args.file}: {len(report.failed)} gradients disagree; worst {worst.key} "
                           f"(relative error {worst.error:.2e})")
    return 0


def _check_out(out: str, suffix: str | tuple[str, ...], kind: str, inputs: dict[str, str]) -> None:
    """``--out`` checked before any work: the right suffix, a file name (not a
    folder) in a folder that exists and can be written, and none of the
    command's inputs (writing it would replace the user's data)."""

    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    if not out.lower().endswith(suffixes):
        raise CommandError(f"--out {out}: {kind} must end in {' or '.join(suffixes)}")
    try:
        check_output(out)
    except OSError as exc:
        raise CommandError(f"--out {_one_line(exc)}") from None
    for flag, given in inputs.items():
        if _same_file(out, given):
            raise CommandError(
                f"--out {out} is the same file as {flag}: writing it would replace that "
                f"file; choose another name for the output"
            )


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (through links, ``..`` and the like)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def _arrays(path: str, what: str, wanted: list[str]) -> tuple[list[str], dict]:
    """The names of the arrays in a ``.npz`` data file and the ``wanted`` ones
    read, through the guarded reader: headers checked, sizes bounded by the
    bytes present, nothing unpickled."""

    expected = f"{what} must be a .npz file (numpy.savez: one array per node, keyed by node name)"
    given = Path(path)
    if given.is_dir():
        raise CommandError(f"{path}: is a folder; {expected}")
    if not path.endswith(".npz"):
        raise CommandError(f"{path}: {expected}, not {given.suffix or 'a name without suffix'!r}")
    if not given.exists():
        raise CommandError(f"{path}: no such file")
    if not given.is_file():
        raise CommandError(f"{path}: not a regular file; {expected}")
    try:
        return read_arrays(path, wanted=set(wanted))
    except ModelFileError as exc:  # names the file, and what it found instead of arrays
        raise CommandError(_one_line(exc)) from None


def _keyed(found: list[str], arrays: dict, names: list[str], role: str, path: str, ignore=()) -> dict:

    known = set(names) | set(ignore)
    missing = [n for n in names if n not in arrays]
    unknown = [n for n in found if n not in known]
    if missing or unknown:
        parts = [f"missing {role} arrays {preview(missing)}"] if missing else []
        parts += [f"unknown arrays {preview(unknown)}"] if unknown else []
        raise CommandError(f"{path}: {' and '.join(parts)}; the model's {role}s are {preview(names)}")
    return {n: arrays[n] for n in names}


@contextlib.contextmanager
def _naming(path: str):
    """Shape errors from the data name the data file (its arrays are keyed by
    the node names the message gives)."""

    try:
        yield
    except ShapeError as exc:
        raise CommandError(f"{path}: {_one_line(exc)}") from None


def _train(args) -> int:

    _check_out(args.out, ".gnet", "the model file", {"the model FILE": args.file, "the --data file": args.data})
    graph = load_model(args.file)
    found, arrays = _arrays(args.data, "the training data", graph.inputs + graph.outputs)
    x = _keyed(found, arrays, graph.inputs, "input", args.data, ignore=graph.outputs)
    y = _keyed(found, arrays, graph.outputs, "output", args.data, ignore=graph.inputs)
    # A saved model keeps its optimizer (and state) unless another one is named.
    if args.optimizer and (graph.optimizer is None or graph.optimizer.name != args.optimizer):
        graph.optimizer = args.optimizer
    elif graph.optimizer is None:
        graph.optimizer = "adam"
    if args.lr is not None:
        graph.optimizer.lr = args.lr
    with _naming(args.data):
        history = graph.fit(
            x, y,
            epochs=args.epochs,
            batch_size=args.batch_size,
            optimizer=graph.optimizer,
            metrics=list(args.metrics),
            validation_split=args.validation_split,
            verbose=0 if args.quiet else 1,
        )
    last = {k: v[-1] for k, v in history.history.items()}
    if is_terminal(sys.stdout):  # wrapped between figures, not by the terminal mid-word
        print("Final epoch:\n" + "\n".join(wrap_logs(last, terminal_width(sys.stdout) - 1)))
    else:
        print("Final epoch: " + format_logs(last))
    path = graph.save(args.out)
    print(f"Wrote {path}")
    return 0


def _predict(args) -> int:
    if Path(args.model).suffix.lower() != ".gnet":
        raise CommandError(f"{args.model}: predict needs a trained model file (.gnet), not a spec")
    _check_out(args.out, (".csv", ".npz"), "predictions (written as CSV or .npz)",
               {"the MODEL": args.model, "the --data file": args.data})
    graph = load_model(args.model)
    found, arrays = _arrays(args.data, "the input data", graph.inputs)
    x = _keyed(found, arrays, graph.inputs, "input", args.data, ignore=graph.outputs)
    with _naming(args.data):
        result = graph.predict(x, batch_size=args.batch_size)
    if not isinstance(result, dict):
        result = {graph.outputs[0]: result}
    if args.out.lower().endswith(".csv"):
        write_csv(args.out, result)
    else:
        atomic_write(args.out, lambda handle: np.savez(handle, **result))
    rows = next(iter(result.values())).shape[0]
    print(f"Wrote {args.out}: {', '.join(f'{k} {v.shape}' for k, v in result.items())} for {rows} rows")
    return 0


def _diff(args) -> int:
    specs = [p for p in (args.a, args.b) if Path(p).suffix.lower() != ".gnet"]  # weights never trained
    report = GraphDiff(load_model(args.a), load_model(args.b), args.a, args.b, weights=not specs)
    print(report.text(width=80) + (f"\n\n(weights not compared: {' and '.join(specs)}: specs)" if specs else ""))
    if args.output is not None:
        print(f"Wrote {report.render(args.output)}")
    return 0


COMMANDS = {"demo": _demo, "summary": _summary, "render": _render, "train": _train, "predict": _predict,
            "check": _check, "diff": _diff}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""

    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except CommandError as exc:
        return _fail(str(exc), exc.status)
    except BrokenPipeError:
        # The reader went away (``graphnet summary m.json | head``): stop quietly,
        # and keep Python from complaining while it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (GraphError, ImportError, OSError) as exc:
        return _fail(_one_line(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # never a traceback, unless asked for
        if os.environ.get("GRAPHNET_TRACEBACK"):
            raise
        return _fail(
            f"unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(set GRAPHNET_TRACEBACK=1 for the traceback, and please report it)",
            1,
        )


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
