"""foobar-ops: build, change and verify the foobar.com stack (lab, apply, runbooks, records)."""

from __future__ import annotations

import faulthandler
import os
import shlex
import signal
import sys

from ..core import interrupts
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

    # SIGTERM (a cancelled CI job, systemd stopping a unit, `kill`) ends a run as Ctrl-C does: what
    # a run holds is given back (a drained server is put back) and the journal says how it ended
    previous = signal.signal(signal.SIGTERM, interrupts.on_sigterm)
    previous_int = signal.signal(signal.SIGINT, interrupts.on_sigint)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where is it stuck?
    try:
        return HANDLERS[args.command](args)
    except FoobarOpsError as err:
        print(f"foobar-ops: error: {mask_known(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print(f"foobar-ops: {'terminated' if isinstance(err, Terminated) else 'interrupted'}", file=sys.stderr)
        return 143 if isinstance(err, Terminated) else 130
    except BrokenPipeError:  # output piped into `head` and the like: quiet, but not "success"
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


Terminated = interrupts.Terminated


if __name__ == "__main__":
    sys.exit(main())
