"""Where plugins' routes are mounted, and who owns which path (``register_routes``).

A plugin's ``register(*handlers)`` mounts under ``/api/<plugin>``; ``prefix="/xapi"`` mounts
at a path of its own where a standard names one (a learning record store's ``/xapi``), which
the plugin then owns whole: two plugins claiming the same prefix, or one inside the other, are
refused at start-up with both names (the later plugin is skipped with that reason, or start-up
stops in strict mode), and so is a prefix inside the kernel's own paths (``/api``, ``/v2``,
``/health``, ``/schema``, ``/.well-known/jwks.json``, whatever the kernel mounts). ``public=True``
opts those handlers out of authentication (tracking links, unsubscribe pages, signup forms);
a plugin's handler marked public any other way (``opt={"public": True}``) is refused, so every
public route is declared where the plugin registers it. :class:`~backplane.StaticFiles` and
:class:`~backplane.Templates` serve package data.

Claims are checked by :func:`claim_paths` before the application's services are built, so a
refused plugin contributes nothing else either; ``backplane worker`` checks them too, and
every process agrees on which plugins run.
"""

from __future__ import annotations

import inspect
import re
import weakref
from pathlib import Path
from typing import Any, NamedTuple

from litestar import Controller, Router
from litestar.handlers import BaseRouteHandler

from backplane._contract import StaticFiles, Templates
from backplane.identity.auth import PUBLIC_OPT
from backplane.plugins import KERNEL_PLUGIN, PluginSet, SkipReason

API = "/api"
OPENAPI = "/schema"
PREFIX_PATTERN = re.compile(r"^(/(?!\.\.?(/|$))[a-z0-9._~-]+)+\Z")
WELL_KNOWN = "/.well-known"
"""RFC 8615 URIs are claimed one by one (the kernel's ``jwks.json``; a plugin's standard may
name another), not the whole directory."""


class Mount(NamedTuple):
    """One registered item and where it goes: a handler, a :class:`StaticFiles` or a
    :class:`Templates` value."""

    prefix: str
    item: Any
    public: bool


def mount_items(
    plugin: str, *handlers: Any, prefix: str | None = None, public: bool = False
) -> list[Mount]:
    """One ``register(*handlers, prefix=None, public=False)`` call, checked."""
    if plugin == KERNEL_PLUGIN:
        where = prefix or API
    elif prefix is None:
        where = f"{API}/{plugin}"
    else:
        if not isinstance(prefix, str) or not PREFIX_PATTERN.match(prefix):
            raise ValueError(
                f"prefix {prefix!r} must be an absolute path of lower-case segments, such as "
                "'/xapi' (no trailing slash)"
            )
        where = prefix
    for handler in handlers:
        _check_item(plugin, handler, public)
    return [Mount(where, handler, public) for handler in handlers]


def _check_item(plugin: str, handler: Any, public: bool) -> None:
    if isinstance(handler, StaticFiles | Templates):
        return
    routable = isinstance(handler, BaseRouteHandler | Router) or (
        inspect.isclass(handler) and issubclass(handler, Controller)
    )
    if not routable:
        raise TypeError(
            f"plugin {plugin!r}: register_routes expects controllers, routers, route handlers, "
            f"StaticFiles or Templates, got {handler!r}"
        )
    if plugin != KERNEL_PLUGIN and not public and _marked_public(handler):
        raise TypeError(
            f"plugin {plugin!r}: {_name(handler)} is marked public (opt 'public'); a plugin's "
            "public routes are registered with register(..., public=True)"
        )


def _marked_public(handler: Any) -> bool:
    """Whether ``handler`` (or a handler inside it) opts out of authentication itself."""
    if inspect.isclass(handler):  # a Controller: its opt and handlers are class attributes
        members = [m for klass in inspect.getmro(handler) for m in vars(klass).items()]
        opts = [value for name, value in members if name == "opt" and isinstance(value, dict)]
        inner = [value for _, value in members]
        return any(o.get(PUBLIC_OPT) for o in opts) or _any_public(inner)
    if handler.opt.get(PUBLIC_OPT):
        return True
    if isinstance(handler, Router):
        return _any_public(
            [
                h
                for route in handler.routes
                for h in getattr(route, "route_handlers", None)
                or [getattr(route, "route_handler", None)]
            ]
        )
    return False


def _any_public(handlers: list[Any]) -> bool:
    return any(_marked_public(h) for h in handlers if isinstance(h, BaseRouteHandler))


def _name(handler: Any) -> str:
    return str(getattr(handler, "__name__", None) or getattr(handler, "handler_name", handler))


def _first_segments(mount: Mount) -> set[str]:
    """The top-level paths a kernel registration occupies (``/api``, ``/health``, ...; under
    ``/.well-known``, its exact paths)."""
    if mount.prefix.strip("/"):
        return {"/" + mount.prefix.strip("/").split("/")[0]}
    handler = mount.item
    if isinstance(handler, BaseRouteHandler):
        paths = set(handler.paths)
    else:
        paths = {getattr(handler, "path", "/")}
    return {
        p if _inside(p, WELL_KNOWN) else "/" + p.strip("/").split("/")[0]
        for p in paths
        if p.strip("/")
    }


def _inside(path: str, other: str) -> bool:
    return path == other or path.startswith(other.rstrip("/") + "/")


_CLAIMS: weakref.WeakKeyDictionary[PluginSet, tuple[tuple[str, ...], list[tuple[str, Mount]]]]
_CLAIMS = weakref.WeakKeyDictionary()


def claim_paths(plugins: PluginSet) -> list[tuple[str, Mount]]:
    """Every plugin's mounts, ``(plugin, mount)`` in plugin order, once their paths are
    checked: a plugin whose prefix is reserved or claimed by an earlier plugin is refused
    (:meth:`PluginSet.refuse`) and its mounts dropped. Computed once per plugin set."""
    cached = _CLAIMS.get(plugins)
    if cached is not None and cached[0] == tuple(plugins.order):
        return cached[1]
    mounts = plugins.collect("register_routes", mount_items)
    reserved = {OPENAPI}
    for plugin, mount in mounts:
        if plugin == KERNEL_PLUGIN:
            reserved |= _first_segments(mount)
    owners: dict[str, str] = {}
    refused: set[str] = set()
    for plugin, mount in mounts:
        if plugin == KERNEL_PLUGIN or plugin in refused or mount.prefix == f"{API}/{plugin}":
            continue
        problem = _claim_problem(plugin, mount.prefix, reserved, owners)
        if problem is None:
            owners.setdefault(mount.prefix, plugin)
            continue
        refused.add(plugin)
        plugins.refuse(plugin, SkipReason.PATH_CONFLICT, problem)
    kept = [(plugin, mount) for plugin, mount in mounts if plugin not in refused]
    _CLAIMS[plugins] = (tuple(plugins.order), kept)
    return kept


def _claim_problem(
    plugin: str, prefix: str, reserved: set[str], owners: dict[str, str]
) -> str | None:
    for kernel_path in sorted(reserved):
        if _inside(prefix, kernel_path) or _inside(kernel_path, prefix):
            return f"prefix {prefix!r} is inside the kernel's {kernel_path!r}, which is reserved"
    for claimed, owner in owners.items():
        if owner != plugin and (_inside(prefix, claimed) or _inside(claimed, prefix)):
            return (
                f"prefix {prefix!r} conflicts with {claimed!r}, claimed by plugin {owner!r} "
                f"(loaded first); plugins {owner!r} and {plugin!r} claim the same path"
            )
    return None


def static_router(plugin: str, static: StaticFiles) -> Router:
    """A public router serving ``static.directory`` at ``static.path``."""
    from litestar.static_files import create_static_files_router

    directory = static.directory
    if not isinstance(directory, Path) or not directory.is_dir():
        raise ValueError(
            f"plugin {plugin!r}: StaticFiles directory {directory!r} is not a directory on disk "
            "(package data must be installed as files, not zipped)"
        )
    return create_static_files_router(
        path=static.path,
        directories=[directory],
        include_in_schema=False,
        opt={PUBLIC_OPT: True},
    )


def template_config(templates: list[tuple[str, Templates]]) -> Any:
    """Litestar's template configuration for every plugin's templates (None without any):
    Jinja, autoescaped, each plugin's directory under its name (``<plugin>/page.html``)."""
    if not templates:
        return None
    import jinja2
    from litestar.plugins.jinja import JinjaTemplateEngine
    from litestar.template import TemplateConfig

    loader = jinja2.PrefixLoader(
        {plugin: jinja2.FileSystemLoader(str(t.directory)) for plugin, t in templates}
    )
    environment = jinja2.Environment(loader=loader, autoescape=True)
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(environment))
