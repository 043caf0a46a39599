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
bytes present). ``--out`` (``-o`` of ``render`` and ``diff``) is checked
before any work, and an ``--out`` that is one of the command's inputs is
refused, so nothing the user has is replaced by mistake. Every failure is
one line on stderr (``graphnet: error: ...``) and a non-zero exit status: 2
for bad arguments (argparse's, unknown optimizer and metric names among
them, and an output suffix the command cannot write), 1 for anything else,
130 when interrupted. Set ``GRAPHNET_TRACEBACK=1`` to
see the traceback of an unexpected error.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._cli_args import PROG, CommandError, build_parser
from ._data import as_inputs, as_targets, common_rows
from ._files import atomic_write, check_output
from ._npz import read_arrays
from ._progress import format_logs, is_terminal, terminal_width, wrap_logs
from ._tables import write_csv
from ._text import preview
from .demo import WIDTH, run
from .diff import GraphDiff
from .errors import GraphError, ModelFileError, ShapeError
from .gradient_check import check_gradients
from .graph import Graph
from .render import FORMATS, PAGES
from .saving import load

__all__ = ["main", "load_model", "build_parser", "CommandError"]

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


def _demo(args) -> int:

    result = run(out=args.out, epochs=args.epochs, seed=args.seed, verbose=0 if args.quiet else 1)
    names = ", ".join(p.name for p in result.written)
    print("\n" + textwrap.fill(f"Wrote {names} into {args.out}/", WIDTH, break_on_hyphens=False))
    for problem in result.problems:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
    return 1 if result.problems else 0


def _summary(args) -> int:
    load_model(args.file).summary()
    return 0


def _render(args) -> int:
    _check_out(args.output, tuple("." + f for f in [*FORMATS, *PAGES]), "the diagram (its suffix picks the format)",
               {"the model FILE": args.file, "the --stats file": args.stats}, flag="-o")
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
    with _naming(args.data):
        common_rows(as_inputs(graph, x), as_targets(graph, y))  # the whole file checked, as train checks it
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


def _check_out(out: str, suffix: str | tuple[str, ...], kind: str, inputs: dict[str, str],
               flag: str = "--out") -> None:
    """``--out`` (or ``flag``) checked before any work: the right suffix (a
    bad argument: status 2), a file name (not a folder) in a folder that
    exists and can be written, and none of the command's inputs (writing it
    would replace the user's data)."""

    suffixes = (suffix,) if isinstance(suffix, str) else suffix
    if not out.lower().endswith(suffixes):
        ends = " or ".join([", ".join(suffixes[:-1]), suffixes[-1]] if len(suffixes) > 1 else suffixes)
        raise CommandError(f"{flag} {out}: {kind} must end in {ends}", status=2)
    try:
        check_output(out, probe=True)
    except OSError as exc:
        raise CommandError(f"{flag} {_one_line(exc)}") from None
    for name, given in inputs.items():
        if given is not None and _same_file(out, given):
            raise CommandError(
                f"{flag} {out} is the same file as {name}: writing it would replace that "
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
    if args.output is not None:
        _check_out(args.output, tuple("." + f for f in FORMATS), "the drawing of the diff",
                   {"A": args.a, "B": args.b}, flag="-o")
    specs = [p for p in (args.a, args.b) if Path(p).suffix.lower() != ".gnet"]  # weights never trained
    report = GraphDiff(load_model(args.a), load_model(args.b), args.a, args.b, weights=not specs)
    note = textwrap.fill(f"(weights not compared: {' and '.join(specs)}: specs)", 80, break_on_hyphens=False)
    print(report.text(width=80) + (f"\n\n{note}" if specs else ""))
    if args.output is not None:
        print(f"Wrote {report.render(args.output)}")
    return 0


COMMANDS = {"demo": _demo, "summary": _summary, "render": _render, "train": _train, "predict": _predict,
            "check": _check, "diff": _diff}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    # An output whose encoding lacks a character ("→" in cp1252 or ASCII) gets
    # "?" in its place rather than a UnicodeEncodeError; as it was afterwards.
    strict = [s for s in (sys.stdout, sys.stderr) if isinstance(s, io.TextIOWrapper) and s.errors == "strict"]
    for stream in strict:
        stream.reconfigure(errors="replace")
    try:
        return _run(argv)
    finally:
        for stream in strict:
            with contextlib.suppress(ValueError):  # closed meanwhile
                stream.reconfigure(errors="strict")


def _run(argv: Sequence[str] | None) -> int:
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
    # One line, whatever the names in it hold: control characters as Python writes them.
    message = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
