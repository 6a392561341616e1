"""The hosted form page, rendered with the campaign templates' sandbox rules
(:mod:`backplane_marketing.campaigns.render`: Jinja2's immutable sandbox, autoescaped, no
loader, an output limit). The form markup itself (``form_html``: the fields, the hidden
honeypot, the button) is the plugin's; a tenant's own ``page_template`` places it with
``{{ form_html }}`` and sees ``form`` (title, intro) and ``message``/``error``.

Served with a Content-Security-Policy that allows no script at all, so a page template cannot
run code in the API's origin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from backplane_marketing.campaigns.render import _ENV, _render, check_template
from backplane_marketing.errors import MarketingError

HONEYPOT = "website"
"""The hidden field people never see (nor fill); a bot that fills it is answered as if it
succeeded, and nothing is stored or sent."""
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; "
    "form-action 'self'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
INPUT_TYPES = {"number": "number", "date": "date", "boolean": "checkbox"}

FORM_HTML = """<form method="post" action="{{ action }}" class="bp-form">
{%- for field in fields %}
<p><label>{{ field.label }}{% if field.required %} *{% endif %}<br>
<input name="{{ field.name }}" type="{{ field.input }}"
{%- if field.input == "checkbox" %} value="true"{% else %} value="{{ field.value }}"{% endif %}
{%- if field.required %} required{% endif %}></label></p>
{%- endfor %}
<p class="bp-hp" aria-hidden="true" style="position:absolute;left:-10000px">
<label>Leave this empty<input name="%s" type="text" tabindex="-1" autocomplete="off"></label></p>
<p><button type="submit">{{ button }}</button></p>
</form>""".replace("%s", HONEYPOT)

DEFAULT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ form.title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
input{width:100%;padding:.4rem}input[type=checkbox]{width:auto}.error{color:#b00020}</style>
</head><body><main>
<h1>{{ form.title }}</h1>
{% if form.intro %}<p>{{ form.intro }}</p>{% endif %}
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if message %}<p role="status">{{ message }}</p>{% else %}{{ form_html }}{% endif %}
</main></body></html>"""


def check_page_template(source: str, limit: int) -> None:
    """A tenant's page template must parse and place ``{{ form_html }}`` (422)."""
    if not source:
        return
    check_template(source, limit, "page template")
    if "form_html" not in source:
        raise MarketingError("the page template must place the form with {{ form_html }}", 422)


def render_page(
    form: Any,
    fields: Sequence[Mapping[str, Any]],
    action: str,
    limit: int,
    *,
    message: str = "",
    error: str = "",
) -> str:
    """The page of ``form``: its fields (``name``, ``label``, ``input``, ``required``,
    ``value``) posting to ``action``, or ``message`` in their place."""
    context = {"action": action, "fields": fields, "button": form.button}
    form_html = Markup(_render(_ENV, FORM_HTML, context, limit))  # noqa: S704 - rendered escaped
    page = {
        "form": {"title": form.title, "intro": form.intro, "name": form.name},
        "form_html": form_html,
        "message": message,
        "error": error,
    }
    return _render(_ENV, form.page_template or DEFAULT_PAGE, page, limit)
