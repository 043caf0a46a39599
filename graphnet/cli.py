"""The ``graphnet`` command.

::

    graphnet demo [--out DIR] [--epochs N] [--seed S]
    graphnet summary FILE
    graphnet render FILE -o OUT [--rankdir LR|TB|RL|BT]

``FILE`` is a spec (``.json``, ``.yaml``/``.yml``) or a saved model
(``.gnet``); :func:`load_model` picks the reader by suffix. Every failure is
one line on stderr (``graphnet: error: ...``) and a non-zero exit status:
2 for bad arguments, 1 for anything else, 130 when interrupted. Set
``GRAPHNET_TRACEBACK=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

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


def _json(path: Path):
    from .spec import from_dict

    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{path}: not valid JSON: the file is not UTF-8 text") from None
    return from_dict(data)


def _yaml(path: Path):
    return _io("from_spec", path, "a .yaml spec")


def _gnet(path: Path):
    return _io("load", path, "a saved .gnet model")


def _io(function: str, path: Path, what: str):
    try:
        from . import io
    except ImportError as exc:
        raise CommandError(
            f"{path}: reading {what} needs graphnet.io, which this installation lacks ({exc}); "
            "save the architecture as a .json spec instead"
        ) from None
    return getattr(io, function)(path)


#: Readers by file suffix: a spec or a saved model in, a Graph out.
LOADERS = {".json": _json, ".yaml": _yaml, ".yml": _yaml, ".gnet": _gnet}


def load_model(path: str | os.PathLike):
    """The Graph described by a spec (``.json``, ``.yaml``, ``.yml``) or a saved model (``.gnet``).

    Raises
    ------
    CommandError
        For an unknown suffix, a missing or unreadable file, or invalid JSON.
    GraphError
        For a spec that does not describe a valid graph (from the reader).
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .demo import DEFAULT_EPOCHS, DEFAULT_OUT
    from .render import FORMATS, RANKDIRS

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

    readable = f"a spec ({', '.join(s for s in LOADERS if s != '.gnet')}) or a saved model (.gnet)"
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
            f"{', '.join('.' + f for f in FORMATS)} (.dot and .gv need no Graphviz)."
        ),
    )
    render.add_argument("file", metavar="FILE")
    render.add_argument("-o", "--output", metavar="OUT", required=True, help="the file to write")
    render.add_argument("--rankdir", choices=RANKDIRS, default="LR",
                        help="direction of the data flow (default: LR, left to right)")
    return parser


def _demo(args) -> int:
    from .demo import run

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
    path = load_model(args.file).render(args.output, rankdir=args.rankdir)
    print(f"Wrote {path}")
    return 0


COMMANDS = {"demo": _demo, "summary": _summary, "render": _render}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    from .errors import GraphError

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
