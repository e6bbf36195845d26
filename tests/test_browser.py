"""The browser test (tests/browser_check.py) and the offline web assets it relies on.

Tiny fixture pages, one defect each, prove that every check of the browser test fires: a broken image, a broken
link or #fragment, a code line cut off on the right, MyST markup left as text, raw math, console errors, a page that
needs the network, a stored widget that does not render. A clean page with MathJax and a widget served from the
installed assets passes, and so do a scratch book built with book/_ext/offline_assets.py and the Jupyter view of a
small notebook (tools/jupyter_view.py). tools/fetch_web_assets.py is tested on fake tarballs.

Chromium is required: where it is missing these tests fail and say how to install it, unless RESNET_LAB_BROWSER=skip
(`make test BROWSER=skip`) opts out, in which case they skip.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bc = _load("browser_check", ROOT / "tests" / "browser_check.py")
fetch = _load("fetch_web_assets", ROOT / "tools" / "fetch_web_assets.py")
ASSETS = Path(os.environ.get("RESNET_LAB_WEB_ASSETS") or Path(sys.prefix) / "share" / "resnet-lab-web")
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def chromium() -> str:
    found = bc.find_chromium()
    if found is None:
        if bc.opted_out():
            pytest.skip(f"Chromium is missing and {bc.OPT_OUT_VAR}=skip opts out of the browser test")
        pytest.fail(bc.INSTALL_HINT)
    return found


@pytest.fixture(scope="module")
def assets() -> dict:
    manifest = ASSETS / "manifest.json"
    if not manifest.is_file():
        pytest.fail(f"no web assets in {ASSETS}: run `make install` (tools/fetch_web_assets.py)")
    return json.loads(manifest.read_text())["packages"]


def asset_uri(assets: dict, name: str) -> str:
    return (ASSETS / name / assets[name]["entry"]).as_uri()


def widget_scripts(assets: dict, with_renderer: bool = True) -> str:
    """A stored IntSlider state and its view, as ipywidgets' embedding writes them."""
    import ipywidgets
    from ipywidgets.embed import embed_data

    data = embed_data(views=[ipywidgets.IntSlider(value=3, description="n")])
    renderer = (f'<script src="{asset_uri(assets, "requirejs")}"></script>\n'
                f'<script src="{asset_uri(assets, "html-manager")}"></script>\n') if with_renderer else ""
    return (renderer + '<script type="application/vnd.jupyter.widget-state+json">'
            + json.dumps(data["manager_state"]) + "</script>\n<div>"
            + '<script type="application/vnd.jupyter.widget-view+json">' + json.dumps(data["view_specs"][0])
            + "</script></div>\n")


def fixture_pages(assets: dict) -> dict[str, tuple[str, str]]:
    """name -> (head, body) of every fixture page."""
    mathjax = f'<script defer src="{asset_uri(assets, "mathjax")}"></script>'
    return {
        "clean": (mathjax, '<h1 id="top">Clean</h1><p>Math <span class="math notranslate nohighlight">\\(x^2\\)'
                  '</span> and</p><div class="math notranslate nohighlight">\\[\\sum_i a_i \\tag{1.1}\\]</div>'
                  '<p><img src="img.png" alt="dot"> <a href="other.html#target">a link</a>, '
                  '<a href="#top">up</a>, <a href="https://example.org/">external</a></p>'
                  '<pre>short = "code"</pre><p>Costs $5 or $10.</p>' + widget_scripts(assets)),
        "broken_image": ("", '<p><img src="missing.png" alt="missing"></p>'),
        "broken_link": ("", '<p><a href="other.html#nope">bad fragment</a> <a href="missing.html">bad file</a> '
                        '<a href="#nowhere">bad anchor</a></p>'),
        "long_code": ("", '<div style="width: 500px"><pre style="overflow: auto">'
                      + "x = 1\nresult = compute(" + ", ".join(f"arg{i}" for i in range(40)) + ")\n</pre></div>"),
        "directive": ("", '<p>:::{note}</p><p>A {cite}<code>he2016deep</code> role and {eq}<code>eq-x</code>.</p>'
                      '<p>(eq-label)=</p><pre><code class="language-{exercise}">Do it.</code></pre>'),
        "raw_math": ("", '<p>Here <span class="math">\\(x^2\\)</span> stays raw, and so does $$y = x$$.</p>'),
        "console_error": ("", '<script>console.error("boom from the page");</script>'
                          '<script>notDefinedAnywhere();</script>'
                          '<script>Promise.reject(new Error("rejected"));</script><p>text</p>'),
        "network": ('<script src="https://cdn.example.org/lib.js"></script>', "<p>needs the network</p>"),
        "widget_blank": ("", widget_scripts(assets, with_renderer=False)),
        # As nbconvert's lab template writes a Markdown cell: its text sits in a .jp-InputArea too.
        "jupyter_markdown": ("", '<div class="jp-Cell jp-MarkdownCell"><div class="jp-InputArea"><div '
                             'class="jp-RenderedMarkdown"><p>Inline $x^2$ stays raw.</p><p>:::{note}</p></div></div>'
                             '</div><div class="jp-Cell jp-CodeCell"><div class="jp-InputArea"><pre>s = "$x^2$ '
                             ':::{note}"</pre></div></div>'),
    }


@pytest.fixture(scope="module")
def checked(tmp_path_factory, chromium, assets) -> dict[str, list]:
    """Check every fixture page once (in parallel); the failures by page name."""
    site = tmp_path_factory.mktemp("site")
    (site / "img.png").write_bytes(PNG_1X1)
    (site / "other.html").write_text('<html><head></head><body><p id="target">target</p></body></html>')
    pages = []
    for name, (head, body) in fixture_pages(assets).items():
        path = site / f"{name}.html"
        path.write_text(f'<!DOCTYPE html><html><head><meta charset="utf-8">{head}</head><body>{body}</body></html>')
        pages.append(bc.Page(path, "book", name, site=site))
    result = bc.check_pages(pages, [800], site / "_out", shots=False, jobs=2, chromium=chromium)
    by_page: dict[str, list] = {page.label: [] for page in pages}
    for failure in result.failures:
        by_page[failure.page].append(failure)
    return by_page


def messages(failures: list, check: str) -> str:
    return "\n".join(f.message for f in failures if f.check == check)


def test_clean_page_passes(checked):
    assert checked["clean"] == [], "\n".join(map(str, checked["clean"]))


def test_broken_image_fails(checked):
    assert "missing.png" in messages(checked["broken_image"], "image")
    assert "missing.png" in messages(checked["broken_image"], "resource")


def test_broken_links_fail(checked):
    text = messages(checked["broken_link"], "link")
    assert "no id 'nope' in other.html" in text
    assert "'missing.html' points to a missing file" in text
    assert "no id 'nowhere'" in text


def test_cut_off_code_line_fails_and_names_the_line(checked):
    text = messages(checked["long_code"], "overflow")
    assert "cut off on the right" in text and "line 2 (" in text and "result = compute(arg0" in text
    assert "line 1 (" not in text


def test_myst_markup_left_as_text_fails(checked):
    text = messages(checked["directive"], "markup")
    for needle in ("colon-fence directive", "{cite}", "{eq}", "(eq-label)=", "```{exercise}"):
        assert needle in text, needle


def test_raw_math_fails(checked):
    text = messages(checked["raw_math"], "math")
    assert "MathJax typeset nothing" in text and r"raw \(...\)" in text and "raw $$...$$" in text


def test_console_errors_fail(checked):
    text = messages(checked["console_error"], "console")
    assert "boom from the page" in text
    assert "notDefinedAnywhere" in text
    assert "rejected" in text


def test_network_load_fails(checked):
    assert "https://cdn.example.org/lib.js" in messages(checked["network"], "offline")


def test_markdown_cells_of_the_jupyter_view_are_checked_but_code_cells_are_not(checked):
    assert messages(checked["jupyter_markdown"], "math").count("raw $...$ in the text: ...Inline $x^2$ stays raw.") == 1
    assert messages(checked["jupyter_markdown"], "markup").count("colon-fence directive") == 1


def test_widget_without_renderer_fails(checked):
    assert "did not render" in messages(checked["widget_blank"], "widgets")


# --- patterns and static checks (no browser) --------------------------------------------------------------


@pytest.mark.parametrize("text, found", [
    (":::{note} A title", True), (":::", True), ("```{math}", True), ("see {cite}he2016deep", True),
    ("{numref}fig-x", True), ("(eq-residual)=", True), ("a set {x} of values", False),
    ("f(x)=y is code-like text", False), ("ratio (2.3)", False),
])
def test_markup_patterns(text, found):
    assert any(p.search(text) for p, _ in bc.MARKUP) is found


@pytest.mark.parametrize("text, found", [
    (r"raw \(x\) left", True), (r"\[ y \]", True), ("$$x$$", True), (r"$x_1$ raw", True),
    ("Costs $5 or $10.", False), ("plain text", False),
])
def test_raw_math_patterns(text, found):
    assert any(p.search(text) for p, _ in bc.RAW_MATH) is found


def test_jupyter_links_to_notebooks_resolve_to_their_pages(tmp_path):
    (tmp_path / "02_b.html").write_text('<p id="sec">x</p>')
    page = tmp_path / "01_a.html"
    page.write_text('<a href="02_b.ipynb">ok</a> <a href="02_b.ipynb#sec">ok</a> <a href="03_c.ipynb">bad</a>')
    failures = bc.check_links(bc.Page(page, "jupyter", "a", site=tmp_path))
    assert [f.message for f in failures] == ["link '03_c.ipynb' points to a missing file"]


def test_fragments_match_ids_as_written_or_percent_decoded(tmp_path):
    # nbconvert writes a heading with quotes as id="5.6-What-%22x%22" and links to it as written
    page = tmp_path / "a.html"
    page.write_text('<h2 id="5.6-What-%22x%22">h</h2> <p id="b c">p</p> <a href="#5.6-What-%22x%22">ok</a>'
                    ' <a href="#b%20c">ok</a> <a href="#5.6-What-%22y%22">bad</a>')
    failures = bc.check_links(bc.Page(page, "jupyter", "a", site=tmp_path))
    assert [f.message for f in failures] == ["link '#5.6-What-%22y%22': no id '5.6-What-%22y%22' in a.html"]


def test_missing_colab_button_and_stale_page_fail(tmp_path):
    source = tmp_path / "ch.ipynb"
    page = tmp_path / "ch.html"
    page.write_text("<p>no launch button</p>")
    source.write_text("{}")
    os.utime(page, (1, 1))
    failures = bc.check_static(bc.Page(page, "book", "ch", source=source, notebook=True, site=tmp_path))
    assert {f.check for f in failures} == {"colab", "built"}


def test_colab_button_must_open_this_chapter(tmp_path):
    source = sorted((ROOT / "notebooks").glob("*.ipynb"))[0]
    page = tmp_path / "ch.html"
    base = "https://colab.research.google.com/github/resnet-lab/resnet-lab/blob/main/"
    page.write_text(f'<a href="{base}notebooks/other.ipynb">Colab</a>')
    chapter = bc.Page(page, "book", "ch", source=source, notebook=True, site=tmp_path)
    assert "not notebooks/" in bc.check_colab(chapter)[0].message
    bc._SCANS.pop(page, None)
    page.write_text(f'<a href="{base}notebooks/{source.name}">Colab</a>')
    assert bc.check_colab(chapter) == []


def test_toc_pages_cover_every_entry():
    labels = [p.label for p in bc.book_pages(ROOT / "_build" / "html")]
    assert "book: book/references" in labels and any(label.startswith("book: notebooks/") for label in labels)
    notebooks = [e for e in bc.toc_entries() if (ROOT / f"{e}.ipynb").is_file()]
    assert [p.source for p in bc.jupyter_pages(ROOT / "_build" / "jupyter")] == [ROOT / f"{e}.ipynb" for e in notebooks]
    assert all(p.notebook for p in bc.book_pages(ROOT / "_build" / "html") if p.label[6:] in notebooks)


def test_missing_chromium_fails_unless_opted_out(monkeypatch, capsys):
    monkeypatch.setattr(bc, "find_chromium", lambda: None)
    monkeypatch.delenv(bc.OPT_OUT_VAR, raising=False)
    assert bc.main([]) == 1
    assert "sudo apt-get install chromium" in capsys.readouterr().err
    monkeypatch.setenv(bc.OPT_OUT_VAR, "skip")
    assert bc.main([]) == 0
    assert "SKIPPED" in capsys.readouterr().out


# --- the real assets, end to end --------------------------------------------------------------------------

NOTEBOOK_MATH = "# Chapter 1. Scratch\n\nInline $x^2$ and\n\n$$\ny = x \\tag{1.1}\n$$\n"


def scratch_notebook(assets: dict) -> dict:
    import ipywidgets
    from ipywidgets.embed import embed_data

    data = embed_data(views=[ipywidgets.IntSlider(value=3, description="n")])
    view = {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.jupyter.widget-view+json": data["view_specs"][0], "text/plain": "slider"}}
    return {"nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                         "widgets": {"application/vnd.jupyter.widget-state+json": data["manager_state"]}},
            "cells": [{"cell_type": "markdown", "id": "m1", "metadata": {}, "source": NOTEBOOK_MATH},
                      {"cell_type": "code", "id": "c1", "metadata": {}, "execution_count": 1,
                       "source": "slider", "outputs": [view]}]}


SCRATCH_CONFIG = """title: Scratch
only_build_toc_files: true
exclude_patterns: [".*", "**/.*", "_build"]
execute: {execute_notebooks: "off"}
parse: {myst_enable_extensions: [amsmath, colon_fence, dollarmath]}
repository: {url: "https://github.com/resnet-lab/resnet-lab", branch: main, path_to_book: ""}
launch_buttons: {colab_url: "https://colab.research.google.com"}
sphinx:
  local_extensions:
    offline_assets: %s
"""


def build_scratch_book(tmp_path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    (tmp_path / "_config.yml").write_text(SCRATCH_CONFIG % json.dumps(str(ROOT / "book" / "_ext")))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapter\n")
    (tmp_path / "intro.md").write_text("# Intro\n\nMath $a + b$.\n")
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jupyter_book), "build", str(tmp_path), "--all", "--warningiserror"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


@pytest.mark.slow
def test_scratch_book_with_offline_assets_passes(tmp_path, chromium, assets):
    (tmp_path / "chapter.ipynb").write_text(json.dumps(scratch_notebook(assets)))
    result = build_scratch_book(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html_dir = tmp_path / "_build" / "html"
    chapter = (html_dir / "chapter.html").read_text()
    assert "_static/resnet-lab-web/mathjax/es5/tex-mml-chtml.js" in chapter
    assert "_static/resnet-lab-web/html-manager/dist/embed-amd.js" in chapter
    assert (html_dir / "_static" / "resnet-lab-web" / "mathjax" / "es5" / "tex-mml-chtml.js").is_file()
    pages = [bc.Page(html_dir / "intro.html", "book", "intro", site=html_dir),
             bc.Page(html_dir / "chapter.html", "book", "chapter", notebook=True, site=html_dir)]
    checked = bc.check_pages(pages, [1280], tmp_path / "_out", shots=False, jobs=2, chromium=chromium)
    assert checked.failures == [], "\n".join(map(str, checked.failures))
    reports = checked.reports["chapter"]["reports"]["1280"]
    assert reports["mjx"] >= 2 and reports["widgets_rendered"] == 1


@pytest.mark.slow
def test_book_build_without_assets_says_run_make_install(tmp_path):
    (tmp_path / "chapter.md").write_text("# Chapter\n")
    result = build_scratch_book(tmp_path, env={"RESNET_LAB_WEB_ASSETS": str(tmp_path / "nothing")})
    assert result.returncode != 0
    assert "make install" in result.stdout + result.stderr


def test_jupyter_view_renders_math_and_widgets_offline(tmp_path, chromium, assets):
    view = _load("jupyter_view", ROOT / "tools" / "jupyter_view.py")
    notebook = tmp_path / "01_scratch.ipynb"
    notebook.write_text(json.dumps(scratch_notebook(assets)))
    out = tmp_path / "jupyter"
    [page] = view.build([notebook], out)
    checked = bc.check_pages([bc.Page(page, "jupyter", "scratch", site=out)], [1280], tmp_path / "_out",
                             shots=False, chromium=chromium)
    assert checked.failures == [], "\n".join(map(str, checked.failures))
    report = checked.reports["scratch"]["reports"]["1280"]
    assert report["mjx"] >= 2 and report["widgets_rendered"] == 1  # raw inline math would be a failure above


# --- tools/fetch_web_assets.py ------------------------------------------------------------------------------


def fake_package(tmp_path: Path, files: dict[str, bytes], patterns: list[str], entry: str) -> dict:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    blob = buffer.getvalue()
    (tmp_path / "fake-1.0.0.tgz").write_bytes(blob)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()
    return {"name": "fake", "version": "1.0.0", "dest": "fake", "entry": entry, "files": patterns,
            "tarball": "https://registry.invalid/fake/-/fake-1.0.0.tgz", "integrity": integrity}


def test_fetch_unpacks_only_listed_files(tmp_path):
    package = fake_package(tmp_path, {"package/dist/a.js": b"a", "package/dist/a.js.map": b"m",
                                      "package/../evil.js": b"x", "package/LICENSE": b"l"},
                           ["dist/*.js", "LICENSE"], "dist/a.js")
    dest = tmp_path / "web"
    fetch.install(dest, [package], tarballs=tmp_path, out=io.StringIO())
    kept = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert kept == ["fake/LICENSE", "fake/dist/a.js", "manifest.json", "widgets-config.js"]
    assert not (tmp_path / "evil.js").exists()
    assert fetch.up_to_date(dest, [package])


def test_fetch_rejects_a_tarball_that_is_not_the_locked_one(tmp_path):
    package = fake_package(tmp_path, {"package/a.js": b"a"}, ["a.js"], "a.js")
    package["integrity"] = "sha512-" + base64.b64encode(hashlib.sha512(b"other").digest()).decode()
    dest = tmp_path / "web"
    with pytest.raises(fetch.AssetError, match="integrity mismatch"):
        fetch.install(dest, [package], tarballs=tmp_path, out=io.StringIO())
    assert not dest.exists()


def test_fetch_fails_when_a_listed_file_is_missing(tmp_path):
    package = fake_package(tmp_path, {"package/a.js": b"a"}, ["a.js", "dist/*.woff2"], "a.js")
    with pytest.raises(fetch.AssetError, match="dist/"):
        fetch.install(tmp_path / "web", [package], tarballs=tmp_path, out=io.StringIO())


def test_fetch_applies_patches_exactly_as_often_as_the_lock_says(tmp_path):
    package = fake_package(tmp_path, {"package/a.js": b"p=`${s.origin}${s.pathname}`"}, ["a.js"], "a.js")
    package["patches"] = [{"file": "a.js", "pattern": r"\$\{(\w)\.origin\}", "replace": r"${\1.ORIGIN}", "count": 1}]
    fetch.install(tmp_path / "web", [package], tarballs=tmp_path, out=io.StringIO())
    assert (tmp_path / "web" / "fake" / "a.js").read_text() == "p=`${s.ORIGIN}${s.pathname}`"
    package["patches"][0]["count"] = 2
    with pytest.raises(fetch.AssetError, match="matched 1 times, not 2"):
        fetch.install(tmp_path / "web2", [package], tarballs=tmp_path, out=io.StringIO())


def test_lock_pins_versions_and_sha512():
    packages = {p["dest"]: p for p in fetch.load_lock()}
    assert set(packages) == {"mathjax", "requirejs", "html-manager"}
    assert packages["mathjax"]["version"].startswith("3.")
    assert packages["html-manager"]["version"].startswith("1.")  # html-manager 1.x renders ipywidgets 8 state
    assert packages["requirejs"]["version"].startswith("2.3.")
    for package in packages.values():
        assert package["integrity"].startswith("sha512-")
        assert package["tarball"].startswith("https://registry.npmjs.org/")
        assert package["version"] in package["tarball"]


def test_installed_assets_match_the_lock():
    assert fetch.main(["--check"]) == 0, "run `make install`"
