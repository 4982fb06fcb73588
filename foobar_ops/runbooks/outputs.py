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

__all__ = ["cell_line", "keep", "last_started", "private_file"]

#: Keys of a notebook whose values are its structure, never text a secret can be in.
_STRUCTURE = frozenset({"cell_type", "output_type", "id", "nbformat", "nbformat_minor", "execution_count"})


def keep(path: Path, index: int | None = None, message: str | None = None) -> Path | None:
    """Keep what a run left in its output notebook, read once and written once: a note on what went
    wrong, every known secret masked in every string (parsed, not its raw JSON: a value with quotes
    or backslashes is found as it is, and the notebook stays valid), and the HTML rendering of that
    beside it. Return the HTML's path; None when papermill wrote no notebook (an empty one made for
    it is removed).

    path: the output notebook.
    index: the cell the note goes before (None: at the top).
    message: the note (None: the run ended ok, no note).
    """
    import nbformat
    from nbconvert import HTMLExporter

    if not path.exists() or path.stat().st_size == 0:
        path.unlink(missing_ok=True)  # made for papermill, which never wrote it (no cell ran)
        return None
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # cut short (a stop while papermill wrote it): masked as text, kept for a person
        path.write_text(mask_known(path.read_text(errors="replace")))
        raise
    if message is not None:
        _note(nb, index, message)
    for cell in nb.cells:
        _join_streams(cell)
    _mask_node(nb)
    path.write_text(nbformat.writes(nb))  # the file keeps its (private) mode
    body, _ = HTMLExporter().from_notebook_node(nb)
    return private_file(path.with_suffix(".html"), mask_known(body))


def _join_streams(cell: Any) -> None:
    """Join a cell's consecutive outputs of one stream (as Jupyter shows them), so that a value
    written in pieces is masked whole."""
    kept: list[Any] = []
    for out in cell.get("outputs") or []:
        last = kept[-1] if kept else {}
        if out.get("output_type") == last.get("output_type") == "stream" and out.get("name") == last.get("name"):
            last["text"] = "".join(last["text"]) + "".join(out["text"])
        else:
            kept.append(out)
    if "outputs" in cell:
        cell["outputs"] = kept


def _mask_node(node: Any) -> None:
    """Mask known secrets in every string value of a notebook node, in place."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and key not in _STRUCTURE:
            node[key] = mask_known(value)
        elif isinstance(value, dict | list):
            _mask_node(value)


def private_file(path: Path, text: str = "") -> Path:
    """Write a file of the records: its owner's only (or its team's, in a shared records folder)."""
    privacy.create_file(path)
    if text:
        path.write_text(text)
    return path


def _note(nb: Any, index: int | None, message: str) -> None:
    """Put a visible note into a notebook (before the cell that failed, or at the top)."""
    import nbformat

    text = html_text.escape(mask_known(message))  # the error's text is data, never markup
    cell = nbformat.v4.new_markdown_cell(f"<span style='color:red'><b>{text}</b></span>")
    cell.metadata["tags"] = ["foobar-ops-error"]
    nb.cells.insert(index if index is not None else 0, cell)


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
