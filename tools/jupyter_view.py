"""The Jupyter view: every chapter notebook rendered as Jupyter (and Colab) show it, into _build/jupyter/.

This is `jupyter nbconvert --to html` with the lab template (tools/jupyter_view/index.html.j2 only swaps its
MathJax 2 configuration for MathJax 3's, as JupyterLab 4 uses), run on the notebooks listed in _toc.yml. MathJax,
require.js and the widget renderer come from the files `make install` fetched (tools/fetch_web_assets.py), copied
to _build/jupyter/_static/resnet-lab-web/, so the pages work offline; images are embedded. MyST-only markup shows
here as raw text, exactly as in Jupyter: tests/browser_check.py opens these pages to catch it.

Usage: python tools/jupyter_view.py [--out _build/jupyter] [NOTEBOOK ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
import yaml
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "jupyter_view" / "index.html.j2"
ASSETS_DIRNAME = "resnet-lab-web"


def assets_dir() -> Path:
    return Path(os.environ.get("RESNET_LAB_WEB_ASSETS") or Path(sys.prefix) / "share" / ASSETS_DIRNAME)


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks _toc.yml lists, in reading order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries: list[str] = []

    def walk(node) -> None:  # noqa: ANN001
        if isinstance(node, dict):
            if "file" in node:
                entries.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [root / f"{e}.ipynb" for e in entries if (root / f"{e}.ipynb").is_file()]


def exporter(assets: dict) -> HTMLExporter:
    base = f"_static/{ASSETS_DIRNAME}"
    return HTMLExporter(
        extra_template_basedirs=[str(TEMPLATE.parent.parent)], template_name=TEMPLATE.parent.name, embed_images=True,
        mathjax_url=f"{base}/mathjax/{assets['mathjax']['entry']}",
        require_js_url=f"{base}/requirejs/{assets['requirejs']['entry']}",
        widget_renderer_url=f"{base}/html-manager/{assets['html-manager']['entry']}",
        jquery_url="",  # the lab template does not use jQuery
    )


def build(notebooks: list[Path], out: Path) -> list[Path]:
    source = assets_dir()
    try:
        assets = json.loads((source / "manifest.json").read_text(encoding="utf-8"))["packages"]
    except (OSError, ValueError, KeyError):
        sys.exit(f"jupyter_view: no web assets in {source}: run `make install` (tools/fetch_web_assets.py)")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, out / "_static" / ASSETS_DIRNAME, dirs_exist_ok=True)
    html = exporter(assets)
    written = []
    for path in notebooks:
        resources = {"metadata": {"name": path.stem, "path": str(path.parent)},
                     "widgets_config_url": f"_static/{ASSETS_DIRNAME}/widgets-config.js"}
        body, _ = html.from_notebook_node(nbformat.read(path, as_version=4), resources=resources)
        target = out / f"{path.stem}.html"
        target.write_text(body, encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: the notebooks in _toc.yml")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "jupyter")
    args = parser.parse_args(argv)
    written = build(args.notebooks or toc_notebooks(), args.out)
    print(f"Jupyter view: {len(written)} pages in {args.out} (open file://{args.out.resolve()}/<notebook>.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
