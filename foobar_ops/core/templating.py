"""Jinja2 rendering for file.managed: strict undefined variables, secrets revealed into the file
only (and remembered so every other output masks them). Templates are files named by path, or
inline text; the core ships none."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from .errors import TemplateError
from .secrets import Secret


def systemd_env(value: object) -> str:
    """Quote a value for a systemd EnvironmentFile line: double quotes, with backslash, quote,
    dollar sign and backtick escaped, so that spaces, quotes and backslashes survive as written.
    A newline is kept as it is: inside double quotes systemd takes it as part of the value."""
    text = str(value)
    for raw, escaped in (("\\", "\\\\"), ('"', '\\"'), ("$", "\\$"), ("`", "\\`")):
        text = text.replace(raw, escaped)
    return f'"{text}"'


def mysql_option(value: object) -> str:
    """Quote a value for a MariaDB option file: double quotes, with backslash and quote escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{text}"'


FILTERS = {"systemd_env": systemd_env, "mysql_option": mysql_option}


def _with_filters(env: jinja2.Environment) -> jinja2.Environment:
    env.filters.update(FILTERS)
    return env


@lru_cache(maxsize=32)
def _environment(folder: str) -> jinja2.Environment:
    return _with_filters(
        jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            autoescape=False,
        )
    )


#: Inline templates read no file: an {% include %} in one is an error, not a read of the control machine.
_INLINE = _with_filters(
    jinja2.Environment(
        loader=jinja2.DictLoader({}), undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
)


def _reveal(value: Any) -> Any:
    """Return value with every Secret replaced by its revealed text (recursively)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_reveal(v) for v in value)
    return value


def render(template: str | Path, context: dict[str, Any], *, inline: bool = False, where: str = "") -> str:
    """Render a template with a context; raise TemplateError naming the template and the problem.

    template: the path of a template file (it may include others from its folder), or the
        template text when inline.
    context: variables (Secret values are revealed).
    inline: template is the text itself.
    where: the state id, for error messages.
    """
    path = None if inline else Path(template)
    name = "<inline>" if path is None else str(path)
    try:
        if path is None:
            tpl = _INLINE.from_string(str(template))
        else:
            tpl = _environment(str(path.parent.resolve())).get_template(path.name)
        return tpl.render(**_reveal(context))
    except jinja2.TemplateNotFound:
        raise TemplateError(f"{where}: template {name} not found") from None
    except jinja2.UndefinedError as err:
        raise TemplateError(f"{where}: template {name}: {err.message}") from None
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{where}: template {name} line {err.lineno}: {err.message}") from None
