"""Jinja2 rendering for file.managed: strict undefined variables, secrets revealed into the file
only (and remembered so every other output masks them)."""
from __future__ import annotations

from pathlib import Path

import jinja2

from .errors import FoobarOpsError
from .secrets import Secret

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

_env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
                          undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                          autoescape=False)


class TemplateError(FoobarOpsError):
    """A template could not be rendered (missing variable, syntax error, unknown template)."""


def _reveal(value):
    """Return value with every Secret replaced by its revealed text (recursively)."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_reveal(v) for v in value)
    return value


def render(template: str, context: dict, *, inline: bool = False, where: str = "") -> str:
    """Render a template with a context; raise TemplateError naming the template and the problem.

    template: a file name under foobar_ops/templates, or the template text when inline.
    context: variables (Secret values are revealed).
    inline: template is the text itself.
    where: the state id, for error messages.
    """
    name = "<inline>" if inline else template
    try:
        tpl = _env.from_string(template) if inline else _env.get_template(template)
        return tpl.render(**_reveal(context))
    except jinja2.TemplateNotFound:
        raise TemplateError(f"{where}: template {template!r} not found in {TEMPLATE_DIR}") from None
    except jinja2.UndefinedError as err:
        raise TemplateError(f"{where}: template {name}: {err.message}") from None
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{where}: template {name} line {err.lineno}: {err.message}") from None
