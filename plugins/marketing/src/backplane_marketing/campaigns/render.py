"""Rendering a campaign template for one contact, in Jinja2's ``ImmutableSandboxedEnvironment``:
no attribute of Python internals, no file or network access (no loader: ``include`` and
``import`` find nothing), autoescaped HTML, and an output limit (``max_rendered_chars``), so a
tenant's template cannot run code, read files or exhaust the worker.

A missing field renders empty, so ``{{ contact.first_name | default("there") }}`` falls back.
Tracked links: the literal ``href="https://..."`` URLs of the HTML part, replaced by click
URLs; an open pixel goes before ``</body>``.
"""

from __future__ import annotations

import functools
import html as html_escape
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from jinja2 import Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backplane_marketing.errors import MarketingError

HREF = re.compile(r'href="(https?://[^"{}<>\s]+)"')
_ENV = ImmutableSandboxedEnvironment(autoescape=True)
_TEXT_ENV = ImmutableSandboxedEnvironment(autoescape=False)


class Rendered(msgspec.Struct, kw_only=True):
    subject: str
    html: str | None
    text: str


def check_template(source: str, limit: int, part: str) -> None:
    """Refuse a part that is too long or does not parse (422 naming the part)."""
    if len(source) > limit:
        raise MarketingError(f"the {part} is {len(source)} characters; at most {limit}", 422)
    try:
        _ENV.parse(source)
    except TemplateError as error:
        raise MarketingError(f"the {part} does not parse: {error}", 422) from None


@functools.lru_cache(maxsize=64)
def _compiled(env: ImmutableSandboxedEnvironment, source: str) -> Template:
    """The compiled template (compiling costs more than rendering, and a campaign renders the
    same three sources once per message)."""
    return env.from_string(source)


def _render(env: ImmutableSandboxedEnvironment, source: str, context: Any, limit: int) -> str:
    try:
        pieces = _compiled(env, source).generate(context)
        out: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            if size > limit:
                raise MarketingError(f"the template renders past {limit} characters", 422)
            out.append(piece)
        return "".join(out)
    except SecurityError as error:
        raise MarketingError(f"template refused by the sandbox: {error}", 422) from None
    except TemplateError as error:
        raise MarketingError(f"template error: {error}", 422) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise MarketingError(f"template error: {type(error).__name__}: {error}", 422) from None


def contact_context(
    email: str, name: str, attributes: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    """What templates see: ``contact`` (email, name, first_name, last_name and every custom
    attribute) and ``extra`` (``unsubscribe_url``, ``campaign``)."""
    first, _, last = name.strip().partition(" ")
    contact = {**attributes, "email": email, "name": name}
    if first:
        contact["first_name"] = first
    if last:
        contact["last_name"] = last.strip()
    return {"contact": contact, **extra}


def render(subject: str, html: str, text: str, context: Mapping[str, Any], limit: int) -> Rendered:
    rendered_subject = _render(_TEXT_ENV, subject, context, limit)
    return Rendered(
        subject=" ".join(rendered_subject.split())[:998],  # one line: no header injection
        html=_render(_ENV, html, context, limit) if html.strip() else None,
        text=_render(_TEXT_ENV, text, context, limit),
    )


def links_of(html: str) -> list[str]:
    """The literal http(s) links of an HTML part, in order, each once."""
    return list(dict.fromkeys(html_escape.unescape(url) for url in HREF.findall(html)))


def track(html: str, click_urls: Mapping[str, str], pixel_url: str) -> str:
    """``html`` with its tracked links pointed at their click URLs and the open pixel added."""

    def swap(match: re.Match[str]) -> str:
        url = click_urls.get(html_escape.unescape(match[1]))
        return f'href="{html_escape.escape(url)}"' if url else match[0]

    tracked = HREF.sub(swap, html)
    pixel = f'<img src="{html_escape.escape(pixel_url)}" width="1" height="1" alt="">'
    closing = tracked.lower().rfind("</body>")
    if closing < 0:
        return tracked + pixel
    return tracked[:closing] + pixel + tracked[closing:]
