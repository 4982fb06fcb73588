"""The wire protocol between the engine and a host: the shell script it sends (facts in framed
sections, a change that survives a cut connection, the read-back of a change's outcome after a
cut) and the decoder of what comes back. Pure text in, text out: no connection here, so a unit
test's fake host reads the same scripts with the same decoder the engine uses.

A script's output is a run of sections, each framed as

    @@FBO <tag> BEGIN
    <output>
    @@FBO <tag> END <exit code>

Scripts over PACK_OVER bytes travel gzipped and base64-encoded both ways (packed/unpacked_output).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
import zlib
from collections.abc import Sequence

from ..onhost import CHANGES_LOCK, LOCK_DIR, OUTCOMES, OWED
from ..shell import cmd

__all__ = [
    "HEAD",
    "PACK_OVER",
    "VALIDATION_FAILED",
    "apply_section",
    "decode",
    "gather_script",
    "is_packed",
    "owed_marker",
    "packed",
    "read_back_script",
    "script_head",
    "section",
    "sections",
    "unpack_command",
    "unpacked_output",
]

_SECTION = re.compile(r"@@FBO (\S+) BEGIN\n(.*?)\n@@FBO \1 END (\d+)\n", re.S)
VALIDATION_FAILED = 97


def _begin(tag: str) -> str:
    """The line that opens a section's output (see sections())."""
    return f"printf '\\n@@FBO %s BEGIN\\n' {tag}\n"


def _end(tag: str, code: str) -> str:
    """The line that closes a section's output with its exit code (a shell word)."""
    return f"printf '\\n@@FBO %s END %d\\n' {tag} {code}\n"


def section(tag: str, body: str) -> str:
    """Return a script part whose output and exit code can be told apart from the others."""
    return _begin(tag) + f"( {body}\n) 2>&1 </dev/null\n" + _end(tag, "$?")


#: Scripts longer than this travel compressed (a fact script is repetitive: ~6x smaller on the wire).
PACK_OVER = 1024


def packed(script: str) -> str:
    """Return the command line that runs a script with sh: as it is when short, else gzipped and
    base64-encoded (no shell quoting to expand, a fraction of the bytes on the wire).

    script: the shell script.
    """
    if len(script) <= PACK_OVER:
        return cmd("sh", "-c", script)
    payload = base64.b64encode(gzip.compress(script.encode(), 9)).decode()
    # one program (sudo runs it all); its output comes back compressed and in one piece (see
    # unpacked_output), not as hundreds of small SSH packets, one per printf, that would cost
    # several times its size; the script's exit status rides at the end of it (the pipeline's own
    # is base64's)
    return cmd(
        "sh",
        "-c",
        f"echo {payload} | base64 -d | gzip -dc | {{ sh; printf '\\n@@FBO-EXIT %d\\n' $?; }} | gzip -1 | base64 -w 0",
    )


_EXIT = re.compile(r"\n@@FBO-EXIT (\d+)\n\Z")


def is_packed(line: str) -> bool:
    """True when a command line from packed() sends its output back compressed."""
    return line.endswith("base64 -w 0'")


def unpacked_output(text: str) -> tuple[str, int | None]:
    """Return what a packed script printed (its output travels gzipped and base64-encoded) and
    its exit status; when it was cut short, as much as arrived and None."""
    clean = text.strip()
    try:
        data = base64.b64decode(clean[: len(clean) // 4 * 4])
    except (ValueError, binascii.Error):
        return "", None
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = (inflate.decompress(data) + inflate.flush()).decode(errors="replace")
    except zlib.error:
        return "", None
    found = _EXIT.search(out)
    if found is None:
        return out, None
    return out[: found.start()], int(found.group(1))


def apply_section(token: str, body: str) -> str:
    """Return the script part of a change: it runs to its end even when the connection is cut
    (SIGHUP and SIGPIPE ignored, output kept in a file), and leaves its output and exit code on
    the host until the run acknowledges them."""
    out = f"{OUTCOMES}/apply.{token}"
    # the change holds the changes lock (shared) while it runs, its own programs do not (a daemon
    # started by it must not keep the lock): the next run waits for it (see runlock); the exit
    # after it keeps sh from exec'ing the change in the shell that holds the lock
    return (
        _begin("apply") + f"mkdir -p -m 0700 {OUTCOMES} {LOCK_DIR}; echo $$ >{out}.started\n"
        f"( flock -s 8; ( {body}\n) 8>&-; rc=$?; exit $rc ) 8>>{CHANGES_LOCK} >{out}.out 2>&1 </dev/null; "
        f"echo $? >{out}.rc.new; mv -f {out}.rc.new {out}.rc\n"
        f"cat {out}.out\n" + _end("apply", f'"$(cat {out}.rc)"')
    )


def owed_marker(state_id: str) -> str:
    """The file that says a reload of `state_id` is owed (hashed: any id is a safe name)."""
    return f"{OWED}/{hashlib.sha256(state_id.encode()).hexdigest()[:20]}"


def sections(output: str) -> dict[str, tuple[str, int]]:
    """Parse script output into tag -> (output, exit code)."""
    return {m.group(1): (m.group(2), int(m.group(3))) for m in _SECTION.finditer(output)}


#: every script starts so: it survives a cut connection (HUP and PIPE ignored)
HEAD = "trap '' HUP PIPE\n"
#: the section that lists the owed-reload markers (see owed_marker)
OWED_LIST = f"ls -1 {OWED} 2>/dev/null; true"


def script_head(acknowledged: Sequence[str] = ()) -> str:
    """The start of every script: survive a cut connection, then remove the change outcomes the
    engine has read (their tokens)."""
    head = HEAD
    if acknowledged:
        head += "rm -f " + " ".join(f"{OUTCOMES}/apply.{t}.*" for t in acknowledged) + "\n"
    return head


def fact_tag(index: int) -> str:
    """The section tag of the fact at this index of a gather."""
    return f"f{index}"


def gather_script(commands: Sequence[str], owed: bool = False) -> str:
    """The sections that gather facts: one per fact command (tags f0, f1, ...), then the owed
    reload markers when asked.

    commands: the fact commands, in order.
    owed: list the owed-reload markers too (section `owed`).
    """
    script = "".join(section(fact_tag(i), command) for i, command in enumerate(commands))
    if owed:
        script += section("owed", OWED_LIST)
    return script


def read_back_script(token: str, wait: int) -> str:
    """The script that reads back a change's outcome after the connection was cut: NOT-STARTED when
    it never began; else wait (while its shell lives, up to `wait` s) for its exit code, say
    STILL-RUNNING when it outlasts the wait, then print its exit code (section rc) and output (out)."""
    out = f"{OUTCOMES}/apply.{token}"
    return (
        f"[ -f {out}.started ] || {{ echo NOT-STARTED; exit 0; }}\n"
        f"p=$(cat {out}.started); i=0\n"
        f'while [ ! -f {out}.rc ] && [ $i -lt {wait} ] && kill -0 "$p" 2>/dev/null; do sleep 1; i=$((i+1)); done\n'
        f'[ -f {out}.rc ] || ! kill -0 "$p" 2>/dev/null || echo "STILL-RUNNING $p $i"\n'
        f"sleep 0.2\n" + section("rc", f"cat {out}.rc") + section("out", f"cat {out}.out")
    )


_PACKED_COMMAND = re.compile(
    r"echo ([A-Za-z0-9+/=]+) \| base64 -d \| gzip -dc \| "
    r"\{ sh; printf '\\n@@FBO-EXIT %d\\n' \$\?; \} \| gzip -1 \| base64 -w 0"
)


def unpack_command(script_arg: str) -> str:
    """Return the script a packed command runs (the argument of its `sh -c`); a short script,
    sent as it is, is returned unchanged."""
    m = _PACKED_COMMAND.fullmatch(script_arg)
    return gzip.decompress(base64.b64decode(m.group(1))).decode() if m else script_arg


def decode(stdout: str, was_packed: bool) -> tuple[str, int | None, dict[str, tuple[str, int]]]:
    """Decode what a script printed: (its text, its exit status when packed, its sections).

    stdout: what came back.
    was_packed: the command line came from packed() and compressed its output.
    """
    text, code = unpacked_output(stdout) if was_packed else (stdout, None)
    return text, code, sections(text)
