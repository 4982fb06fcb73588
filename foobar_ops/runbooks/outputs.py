"""What a runbook run leaves in the records: its output notebook, with a note on what went wrong,
scrubbed of every known secret (each string of the parsed notebook, so that escaping cannot hide a
value and the notebook stays valid; consecutive pieces of one stream joined first, so a value
written in pieces is found), and its HTML rendering; both private to their owner (or to the team
of a shared records folder)."""

from __future__ import annotations

import html as html_text
from pathlib import Path
from typing import Any

from ..core import privacy
from ..core.secrets import mask_known

__all__ = ["cell_line", "html", "last_started", "note", "private_file", "scrub"]

#: Keys of a notebook whose values are its structure, never text a secret can be in.
_STRUCTURE = frozenset({"cell_type", "output_type", "id", "nbformat", "nbformat_minor", "execution_count"})


def scrub(path: Path) -> None:
    """Mask every known secret value in every string of the output notebook (parsed, not its raw
    JSON: a value with quotes or backslashes is found as it is, and the notebook stays valid)."""
    import nbformat

    if not path.exists():
        return
    nb = nbformat.read(path, as_version=4)
    joined = [_join_streams(cell) for cell in nb.cells]
    if _mask_node(nb) or any(joined):
        _write_notebook(nb, path)


def _join_streams(cell: Any) -> bool:
    """Join a cell's consecutive outputs of one stream (as Jupyter shows them), so that a value
    written in pieces is masked whole; return whether any were joined."""
    outputs, kept = cell.get("outputs") or [], list[Any]()
    for out in outputs:
        last = kept[-1] if kept else None
        if out.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream":
            if last.get("name") == out.get("name"):
                last["text"] = "".join(last["text"]) + "".join(out["text"])
                continue
        kept.append(out)
    if len(kept) == len(outputs):
        return False
    cell["outputs"] = kept
    return True


def _mask_node(node: Any) -> bool:
    """Mask known secrets in every string value of a notebook node, in place; return whether any was."""
    changed = False
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str):
            if key not in _STRUCTURE and (masked := mask_known(value)) != value:
                node[key], changed = masked, True
        elif isinstance(value, dict | list):
            changed = _mask_node(value) or changed
    return changed


def _write_notebook(nb: Any, path: Path) -> None:
    import nbformat

    path.write_text(nbformat.writes(nb))  # the file keeps its (private) mode


def private_file(path: Path, text: str = "") -> Path:
    """Write a file of the records: its owner's only (or its team's, in a shared records folder)."""
    privacy.create_file(path)
    privacy.tighten(path)
    if text:
        path.write_text(text)
    return path


def html(path: Path) -> Path | None:
    """Write the HTML rendering of a notebook beside it; return its path."""
    import nbformat
    from nbconvert import HTMLExporter

    if not path.exists():
        return None
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    return private_file(path.with_suffix(".html"), mask_known(body))


def note(path: Path, index: int | None, message: str) -> None:
    """Put a visible note into the output notebook (before the cell that failed, or at the top)."""
    import nbformat

    if not path.exists():
        return
    nb = nbformat.read(path, as_version=4)
    text = html_text.escape(mask_known(message))  # the error's text is data, never markup
    cell = nbformat.v4.new_markdown_cell(f"<span style='color:red'><b>{text}</b></span>")
    cell.metadata["tags"] = ["foobar-ops-error"]
    nb.cells.insert(index if index is not None else 0, cell)
    _write_notebook(nb, path)


def _cells(path: Path) -> list[Any]:
    """The cells of the output notebook as papermill left it (none when it wrote nothing readable)."""
    import nbformat

    try:
        return list(nbformat.read(path, as_version=4).cells)
    except Exception:  # noqa: BLE001 - missing, empty or cut short: no cell to name
        return []


def last_started(path: Path) -> int | None:
    started = [i for i, c in enumerate(_cells(path)) if c.get("metadata", {}).get("papermill", {}).get("start_time")]
    return started[-1] if started else None


def cell_line(path: Path, index: int | None) -> str:
    """Name a cell of the output notebook by its index and first line."""
    cells = _cells(path)
    if index is None or index >= len(cells):
        return "a cell"
    first = next((ln for ln in cells[index].source.splitlines() if ln.strip()), "")
    return f"cell {index} ({first.strip()[:60]!r})"
