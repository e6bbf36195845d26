"""Sphinx extension: the built book serves MathJax 3, require.js and the Jupyter widgets manager itself.

Without it, pages load them from CDNs: offline, math stays raw `\\(...\\)` and stored widget states render blank.
`make install` (tools/fetch_web_assets.py) unpacks the pinned npm releases into PREFIX/share/resnet-lab-web/
(PREFIX: the virtual environment running the build; the environment variable RESNET_LAB_WEB_ASSETS names another
folder). This extension copies that folder into the site's _static/resnet-lab-web/ and points Sphinx's
`mathjax_path` and myst-nb's `nb_ipywidgets_js` at the copies. A build without the assets fails and says to run
`make install`.

It also keeps two upstream glitches out of every page's console, which `make browser` requires to stay clean:
sphinx-thebe registers its configuration script twice ("Identifier 'THEBE_JS_URL' has already been declared"),
and pydata-sphinx-theme logs "Got invalid theme mode" on a reader's first visit (empty localStorage).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from sphinx.errors import ConfigError

ASSETS_DIRNAME = "resnet-lab-web"
WIDGETS_CONFIG = "widgets-config.js"  # tells require.js where the widget manager's files are (tools/)
LOCK = Path(__file__).resolve().parents[2] / "tools" / "web_assets.lock.json"
FIX = "run `make install` (it runs tools/fetch_web_assets.py) to fetch them"


def assets_dir() -> Path:
    return Path(os.environ.get("RESNET_LAB_WEB_ASSETS") or Path(sys.prefix) / "share" / ASSETS_DIRNAME)


def read_manifest(folder: Path) -> dict:
    """The installed packages by folder name ({'mathjax': {'version':..., 'entry':...}, ...}); checked."""
    try:
        packages = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["packages"]
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(f"offline_assets: no web assets in {folder} ({error.__class__.__name__}): {FIX}") from None
    if LOCK.is_file():  # in the repository: the installed assets must be the locked releases
        locked = {p["dest"]: (p["version"], p["integrity"]) for p in json.loads(LOCK.read_text("utf-8"))["packages"]}
        installed = {dest: (p["version"], p["integrity"]) for dest, p in packages.items()}
        if installed != locked:
            raise ConfigError(f"offline_assets: the web assets in {folder} are not the releases pinned in {LOCK}: "
                              f"{FIX}")
    entries = [folder / name / packages.get(name, {}).get("entry", "?") for name in ("mathjax", "requirejs",
                                                                                     "html-manager")]
    for entry in [*entries, folder / WIDGETS_CONFIG]:
        if not entry.is_file():
            raise ConfigError(f"offline_assets: {entry} is missing: {FIX}")
    return packages


def static_path(packages: dict, name: str) -> str:
    """Path of a package's entry file relative to the site's _static folder."""
    return f"{ASSETS_DIRNAME}/{name}/{packages[name]['entry']}"


def configure(app, config) -> None:  # noqa: ANN001
    packages = read_manifest(assets_dir())
    config.mathjax_path = static_path(packages, "mathjax")
    # myst-nb adds these scripts, in this order, to every page that holds a stored widget state.
    config.nb_ipywidgets_js = {static_path(packages, "requirejs"): {},
                               f"{ASSETS_DIRNAME}/{WIDGETS_CONFIG}": {},
                               static_path(packages, "html-manager"): {}}


def copy_assets(app, exception) -> None:  # noqa: ANN001
    if exception is not None or app.builder.format != "html":
        return
    target = Path(app.outdir) / "_static" / ASSETS_DIRNAME
    shutil.copytree(assets_dir(), target, dirs_exist_ok=True)


def _script_key(script) -> tuple:  # noqa: ANN001
    attributes = getattr(script, "attributes", {}) or {}
    return (str(getattr(script, "filename", script) or ""), tuple(sorted(attributes.items())))


def dedupe_scripts(app, pagename, templatename, context, doctree) -> None:  # noqa: ANN001
    """Drop repeated <script> entries (same file or same inline body): sphinx-thebe's config is added twice."""
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        seen: set[tuple] = set()
        context["script_files"] = [s for s in scripts if not (_script_key(s) in seen or seen.add(_script_key(s)))]


# Runs in <head> after the theme's own inline script and before pydata-sphinx-theme.js reads the mode.
THEME_MODE_FIX = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def setup(app):  # noqa: ANN001, ANN201
    # Before myst-nb reads nb_ipywidgets_js (builder-inited) and before any page is written.
    app.connect("config-inited", configure, priority=900)
    app.connect("build-finished", copy_assets)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    app.add_js_file(None, body=THEME_MODE_FIX, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
