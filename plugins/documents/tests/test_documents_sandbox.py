"""Acceptance 2: template injection fails safely with a clear error, and templates that loop
forever, produce huge output or eat memory hit their limits. Each refusal is a RenderError
(never a crash, a leak of a host file, or a hung worker), and the renderer keeps working."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from documents_helpers import SPIN, docx_text, docx_with, pdf_text_of, zip_bomb

from backplane_documents.errors import RenderError
from backplane_documents.generation import VersionSnapshot
from backplane_documents.rendering import RenderLimits, render

LIMITS = RenderLimits(timeout_s=20)
TRAVERSAL = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
JINJA_ESCAPES = [
    TRAVERSAL,
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__['os'].system('touch /tmp/pwned') }}",
    "{% set x = fields.__class__ %}{{ x.__base__.__subclasses__() }}",
    "{{ fields.update({'a': 1}) }}",
]


def typst(source: str, schema: list[dict[str, object]] | None = None) -> VersionSnapshot:
    return VersionSnapshot("typst", source.encode(), schema or [])


def html(source: str) -> VersionSnapshot:
    return VersionSnapshot("html", source.encode(), [{"name": "name", "required": False}])


def refused(version: VersionSnapshot, limits: RenderLimits = LIMITS) -> RenderError:
    with pytest.raises(RenderError) as raised:
        render(version, {}, limits)
    return raised.value


@pytest.mark.parametrize("source", JINJA_ESCAPES)
def test_jinja2_escapes_are_refused_in_html(source: str) -> None:
    error = refused(html(source))
    assert error.kind == "template"
    assert "unsafe" in str(error) or "sandbox" in str(error) or "immutable" in str(error)


@pytest.mark.parametrize("source", JINJA_ESCAPES)
def test_jinja2_escapes_are_refused_in_docx(source: str) -> None:
    version = VersionSnapshot("docx", docx_with("Hello", source), [])
    error = refused(version)
    assert error.kind == "template"
    assert "sandbox" in str(error) or "unsafe" in str(error)
    assert not Path("/tmp/pwned").exists()


def test_a_docx_with_harmless_tags_still_renders() -> None:
    version = VersionSnapshot("docx", docx_with("Hello {{ name }}"), [{"name": "name"}])
    assert docx_text(render(version, {"name": "Ada"}, LIMITS).content) == "Hello Ada"


@pytest.mark.parametrize(
    "source",
    [
        '#read("/etc/passwd")',
        '#read("../../../../../../etc/passwd")',
        '#image("/etc/passwd")',
        '#json("/etc/hostname")',
        '#include "/etc/passwd"',
        '#let p = "/et" + "c/passwd"\n#read(p)',
    ],
)
def test_typst_cannot_read_host_files(source: str) -> None:
    error = refused(typst(source))
    assert error.kind == "template"
    assert "root:" not in str(error)  # nothing of the file's content
    assert "not found" in str(error) or "escape" in str(error), str(error)


def test_typst_cannot_read_a_host_file_at_its_absolute_path(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the host's secret")
    error = refused(typst(f'#read("{secret}")'))
    assert "the host's secret" not in str(error)
    assert "not found" in str(error)


def test_typst_errors_do_not_show_the_sandbox_root() -> None:
    error = refused(typst('#read("data.json")'))
    assert "typst-root-" not in str(error)


def test_typst_package_imports_cannot_download() -> None:
    started = time.monotonic()
    error = refused(typst('#import "@preview/cetz:0.3.0": canvas'))
    assert "download" in str(error) or "not found" in str(error)
    assert time.monotonic() - started < 10


def test_typst_data_arrives_only_as_inputs_and_is_never_markup() -> None:
    schema: list[dict[str, object]] = [{"name": "name"}]
    version = typst("#let d = json(bytes(sys.inputs.data))\n#d.name", schema)
    rendered = render(version, {"name": '#read("/etc/passwd")'}, LIMITS)
    assert '#read("/etc/passwd")' in pdf_text_of(rendered.content)


def test_an_endless_typst_loop_is_an_error() -> None:
    error = refused(typst("#while true {}"))
    assert "always true" in str(error)


def test_endless_typst_recursion_is_an_error() -> None:
    error = refused(typst("#let f(n) = f(n + 1)\n#f(0)"))
    assert "depth" in str(error)


def test_a_slow_typst_template_hits_the_time_limit_and_the_renderer_recovers() -> None:
    limits = RenderLimits(timeout_s=1.0, workers=1)
    started = time.monotonic()
    error = refused(typst(SPIN), limits)
    assert error.kind == "limit"
    assert "render_timeout_s" in str(error)
    assert time.monotonic() - started < 5
    # the killed worker is replaced: the next render works
    assert render(typst("fine"), {}, limits).pages == 1


def test_a_slow_jinja2_template_hits_the_time_limit() -> None:
    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    error = refused(html(slow), RenderLimits(timeout_s=1.0, workers=1))
    assert error.kind == "limit"


def test_huge_html_output_stops_at_the_size_limit() -> None:
    source = (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    error = refused(html(source), RenderLimits(max_output_bytes=1_000_000))
    assert error.kind == "limit"
    assert "max_output_bytes" in str(error)
    assert time.monotonic() - started < 10


def test_too_many_pdf_pages_hit_the_page_limit() -> None:
    error = refused(
        typst("#for i in range(30) [#lorem(10) #pagebreak()]"), RenderLimits(max_pages=5)
    )
    assert error.kind == "limit"
    assert "31 pages, more than 5 (documents.max_pages)" in str(error)


def test_a_large_pdf_hits_the_output_limit() -> None:
    error = refused(typst("#for i in range(40) [#lorem(400)]"), RenderLimits(max_output_bytes=2048))
    assert "max_output_bytes" in str(error)


def test_a_template_eating_memory_hits_the_memory_limit() -> None:
    limits = RenderLimits(memory_bytes=512 * 1024 * 1024, workers=1, timeout_s=30)
    hungry = "#let a = range(50000000).map(i => (i, str(i)))\n#a.len()"
    error = refused(typst(hungry), limits)
    assert error.kind == "limit"
    assert "memory" in str(error)
    assert render(typst("fine"), {}, limits).pages == 1


def test_a_zip_bomb_docx_is_refused() -> None:
    version = VersionSnapshot("docx", zip_bomb(50_000_000), [])
    error = refused(version, RenderLimits(max_output_bytes=1_000_000))
    assert "unpacks to more than" in str(error)


def test_not_a_docx_is_refused() -> None:
    assert "ZIP" in str(refused(VersionSnapshot("docx", b"plain text", [])))


def test_renders_at_once_share_the_workers_and_all_finish() -> None:
    limits = RenderLimits(workers=2, timeout_s=30)
    schema: list[dict[str, object]] = [{"name": "n", "type": "integer"}]
    version = typst("#let d = json(bytes(sys.inputs.data))\nNumber #d.n", schema)
    results: dict[int, int] = {}
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            text = pdf_text_of(render(version, {"n": n}, limits).content)
            results[n] = int(text.split()[-1])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert results == {n: n for n in range(12)}


def test_a_warmed_pool_renders_at_once_and_stays_within_its_size() -> None:
    from backplane_documents.sandbox import RenderPool

    pool = RenderPool(size=2, memory_bytes=0)
    try:
        pool.warm()
        assert len(pool._idle) == 2
        pool.warm()  # already warm: nothing more starts
        assert len(pool._idle) == 2
        started = time.monotonic()
        from backplane_documents.sandbox import Job

        (reply,) = pool.run(Job("html", b"<p>{{ 1 + 1 }}</p>", ["{}"], 1000, 1), timeout_s=10)
        assert (reply.ok, reply.content) == (True, b"<p>2</p>")
        assert time.monotonic() - started < 0.3  # no worker start in the way
        assert len(pool._idle) == 2
    finally:
        pool.close()
    assert pool._idle == []
    with pytest.raises(RenderError, match="shutting down"):
        pool.run(Job("html", b"x", ["{}"], 1000, 1), timeout_s=10)


def test_a_forked_process_starts_its_own_workers() -> None:
    import os

    from backplane_documents import sandbox

    limits = RenderLimits(workers=1)
    render(html("<p>parent</p>"), {}, limits)
    parent_pool = sandbox.pool_for(1, limits.memory_bytes)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: render on its own, report through the pipe
        try:
            mine = sandbox.pool_for(1, limits.memory_bytes)
            content = render(html("<p>child</p>"), {}, limits).content
            os.write(
                writer, b"ok" if mine is not parent_pool and content == b"<p>child</p>" else b"no"
            )
        finally:
            os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    assert os.read(reader, 10) == b"ok"
    os.close(reader)
    assert render(html("<p>parent again</p>"), {}, limits).content == b"<p>parent again</p>"


def test_workers_get_no_secrets_in_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from backplane_documents.sandbox import _Worker

    monkeypatch.setenv("BACKPLANE_SECRET_KEY", "do-not-leak")
    worker = _Worker(memory_bytes=0)
    try:
        worker.wait_ready()
        with open(f"/proc/{worker.process.pid}/environ", "rb") as environ:
            variables = dict(
                item.split(b"=", 1) for item in environ.read().split(b"\0") if b"=" in item
            )
    finally:
        worker.kill()
    assert b"BACKPLANE_SECRET_KEY" not in variables
    assert variables[b"HTTPS_PROXY"] == b"http://127.0.0.1:9"
    assert os.environ["BACKPLANE_SECRET_KEY"] == "do-not-leak"
