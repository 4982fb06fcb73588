"""foobar-ops: build, change and verify the foobar.com stack (lab, apply, runbooks, records)."""

from __future__ import annotations

import os
import shlex
import sys

from ..core.errors import FoobarOpsError
from ..core.secrets import mask_known
from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return its exit status.

    argv: arguments (default: sys.argv[1:]).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(__doc__).parse_args(argv)
    args.command_line = "foobar-ops " + shlex.join(argv)  # what the journal records as the command
    from .commands import HANDLERS

    try:
        return HANDLERS[args.command](args)
    except FoobarOpsError as err:
        print(f"foobar-ops: error: {mask_known(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("foobar-ops: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: quiet, but not "success"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
