"""The report page's package data (static/*.js, static/*.css, templates/*.j2), read through importlib.resources."""
from __future__ import annotations

from functools import cache
from html import escape
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from markupsafe import Markup  # jinja2's own dependency

if TYPE_CHECKING:  # jinja2 is imported on first use: `harness report` needs it, the other subcommands do not
    from jinja2 import Environment, Template

# The page's one script, in the order it runs: report.js opens the function scope that start.js closes, so that the
# helpers, the matrix (report.js) and the per-case rendering (case.js) share it.
SCRIPT_PARTS = ("report.js", "case.js", "start.js")


@cache
def static_text(name: str) -> str:
    """One file of static/, read via importlib.resources so that it works from a wheel, a zip or a source tree."""
    return (files("harness.report") / "static" / name).read_text(encoding="utf-8")


def _escape_as_html_py(value: Any) -> Any:
    """Escape text as html.escape() does (&quot; &#x27;), not markupsafe (&#34; &#39;): one spelling on the page."""
    return value if hasattr(value, "__html__") else Markup(escape(str(value)))


def _template_source(name: str) -> str:
    return (files("harness.report") / "templates" / name).read_text(encoding="utf-8")


@cache
def environment() -> Environment:
    """Jinja2 with autoescaping on (every template here is HTML); trusted HTML and inline code come in as Markup."""
    from jinja2 import Environment, FunctionLoader, StrictUndefined

    # finalize escapes every plain value before autoescaping sees it (a no-op then), in the spelling of the HTML
    # that html.py builds; keep_trailing_newline: the page ends with a newline, as it did before templates;
    # StrictUndefined: a misspelt variable fails the report instead of silently rendering as nothing.
    return Environment(loader=FunctionLoader(_template_source), autoescape=True, finalize=_escape_as_html_py,
                       keep_trailing_newline=True, undefined=StrictUndefined, auto_reload=False)


def template(name: str) -> Template:
    return environment().get_template(name)
