"""Command-line flags written after the ``KEY VALUE`` config overrides.

fast-reid's parser (and ``compare``'s) take the overrides as ``argparse.REMAINDER``: everything
after the first override is an override, so ``... SOLVER.MAX_EPOCH 4 --resume`` used to fail as an
odd override. :func:`hoist_flags` takes such flags out of the overrides again.
"""
from __future__ import annotations

import re
from typing import Dict, List, Sequence, Tuple

#: a config key (``MODEL.BACKBONE.DEPTH``), not a path or a value
CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")

#: arity of a flag: its number of values, or ``MANY`` (values up to the next flag or config key)
MANY = -1


def hoist_flags(opts: Sequence[str], arity: Dict[str, int]) -> Tuple[List[str], List[str]]:
    """Split ``opts`` into ``(flags with their values, the overrides)``. A flag is taken only
    where a KEY of a ``KEY VALUE`` pair would stand, so an override's value is never taken."""
    flags, rest = [], []
    i, opts = 0, list(opts)
    while i < len(opts):
        tok = opts[i]
        name = tok.split("=", 1)[0]
        if len(rest) % 2 == 0 and name in arity:
            flags.append(tok)
            i += 1
            n = 0 if "=" in tok else arity[name]
            if n == MANY:
                while i < len(opts) and not opts[i].startswith("--") \
                        and not CONFIG_KEY.match(opts[i]):
                    flags.append(opts[i])
                    i += 1
            else:
                flags.extend(opts[i:i + n])
                i += n
            continue
        rest.append(tok)
        i += 1
    return flags, rest


def parser_arity(parser) -> Dict[str, int]:
    """``{option string: arity}`` of every optional argument of an ``argparse`` parser."""
    out = {}
    for action in parser._actions:  # argparse has no public listing of its actions
        if not action.option_strings or action.nargs == 0 and action.dest == "help":
            continue
        nargs = action.nargs
        n = 0 if nargs == 0 else 1 if nargs in (None, "?") else MANY if nargs in ("+", "*") \
            else int(nargs)
        for s in action.option_strings:
            out[s] = n
    return out


def parse_args_anywhere(parser, argv: Sequence[str]):
    """``parser.parse_args(argv)`` where the parser's last argument is ``opts``
    (``argparse.REMAINDER``) and the parser's flags may also follow the overrides."""
    argv = list(argv)
    args = parser.parse_args(argv)
    flags, rest = hoist_flags(args.opts, parser_arity(parser))
    if not flags:
        return args
    prefix = argv[:len(argv) - len(args.opts)]
    return parser.parse_args(flags + prefix + rest)  # the flags first: REMAINDER takes the rest
