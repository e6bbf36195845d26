"""The browser test (`make browser`): open every page of the built book and of the Jupyter view in headless Chromium,
offline, and check that it reads right.

Pages: every entry of _toc.yml in _build/html (the book, as Sphinx built it) and every notebook of _toc.yml in
_build/jupyter (the Jupyter view, as nbconvert renders it: what Jupyter and Colab show; tools/jupyter_view.py).
Each page is opened through file:// with name resolution switched off (nothing can come from the network), at each
window width of --widths, with tests/browser_check.js injected as its first script. Per page:

- math: MathJax typeset it (no raw \\( \\[ $$ left in the visible text outside code, no MathJax error);
- every image loaded, no script/stylesheet/font failed to load, nothing requested from the network;
- no MyST directive or role shows as text (```{...}, :::{...}, {cite}, {eq}, (label)= ...);
- stored widget states render as widgets;
- no code block, output block or table is wider than the room the page gives it (reported with the lines);
- the console has no error (console.error, uncaught exceptions, unhandled promise rejections);
and, read from the HTML files: every internal link and #fragment resolves, no script or stylesheet comes from the
network, every chapter page of the book has its Colab launch button, and no built page is older than its source.

A full-height screenshot of each page (at --shot-width) goes to _build/browser/{book,jupyter}/ for review, and the
whole report to _build/browser/report.json. Exit status 1 if any page fails. Where Chromium is missing, the test
fails and says how to install it, unless RESNET_LAB_BROWSER=skip (`make test BROWSER=skip`) opts out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
CHECK_JS = Path(__file__).resolve().with_name("browser_check.js")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = ("headless Chromium is needed for the browser test: install it with `sudo apt-get install chromium` "
                "(Debian/Ubuntu; or set CHROMIUM=/path/to/chrome), or opt out explicitly with "
                "`make test BROWSER=skip` (RESNET_LAB_BROWSER=skip)")
OPT_OUT_VAR = "RESNET_LAB_BROWSER"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--mute-audio",
    "--disable-extensions", "--disable-default-apps", "--force-device-scale-factor=1",
    # Offline: every host name fails to resolve, so a page that needs the network shows it.
    "--host-resolver-rules=MAP * ~NOTFOUND",
]
MAX_SHOT_HEIGHT = 16000  # Chromium's screenshots of taller pages are slow and huge: the top part is enough to review

# MyST markup that must never reach the reader as text (the Jupyter view shows it raw; see design-markup.md).
MARKUP = [
    (re.compile(r"```\s*\{[\w:-]+\}"), "a fenced MyST directive"),
    (re.compile(r"^\s*:{3,}\s*\{[\w:-]+\}.*$|^\s*:{3,}\s*$", re.MULTILINE), "a ::: colon-fence directive"),
    (re.compile(r"\{(cite|cite:p|cite:t|cite:ps|cite:ts|eq|doc|ref|numref|math|term|download|prf:ref|"
                r"abbr|sub|sup|index|guilabel|kbd|file|program|command|envvar|code)\}"), "a MyST role"),
    (re.compile(r"(?:^|\s)\([\w.:-]+\)=(?=\s|$)", re.MULTILINE), "a MyST (label)= target"),
]
RAW_MATH = [
    (re.compile(r"\\\(.{0,80}?\\\)|\\\(", re.DOTALL), r"\(...\)"),
    (re.compile(r"\\\[.{0,80}?\\\]|\\\[", re.DOTALL), r"\[...\]"),
    (re.compile(r"\$\$.{0,80}?\$\$|\$\$", re.DOTALL), "$$...$$"),
    (re.compile(r"\\begin\{[a-z*]+\}"), r"\begin{...}"),
    (re.compile(r"\$[^\s$][^$\n]{0,120}?[\\^_{][^$\n]{0,120}?\$"), "$...$"),
]


@dataclasses.dataclass(frozen=True)
class Page:
    path: Path          # the built HTML file
    kind: str           # "book" or "jupyter"
    label: str          # how messages name it, e.g. "book: notebooks/01_degradation"
    source: Path | None = None  # the notebook or Markdown file it is built from
    notebook: bool = False      # a chapter notebook (the book shows a Colab launch button on it)
    site: Path | None = None    # the root folder of its site: links must stay inside


@dataclasses.dataclass
class Failure:
    page: str
    check: str
    message: str
    width: int | None = None

    def __str__(self) -> str:
        at = f" @{self.width}px" if self.width else ""
        return f"[{self.check}{at}] {self.message}"


# --- finding Chromium and the pages ----------------------------------------------------------------------------


def find_chromium() -> str | None:
    if os.environ.get("CHROMIUM"):  # an explicit choice: used if it runs, never replaced by another browser
        return shutil.which(os.environ["CHROMIUM"])
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def opted_out() -> bool:
    return os.environ.get(OPT_OUT_VAR, "").strip().lower() == "skip"


def toc_entries(root: Path = ROOT) -> list[str]:
    import yaml

    entries: list[str] = []

    def walk(node) -> None:  # noqa: ANN001
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    entries.append(node[key])
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8")))
    return list(dict.fromkeys(e.removesuffix(".ipynb").removesuffix(".md") for e in entries))


def source_of(entry: str, root: Path = ROOT) -> Path | None:
    return next((root / f"{entry}{s}" for s in (".ipynb", ".md") if (root / f"{entry}{s}").is_file()), None)


def book_pages(html_dir: Path, root: Path = ROOT) -> list[Page]:
    pages = []
    for entry in toc_entries(root):
        source = source_of(entry, root)
        pages.append(Page(html_dir / f"{entry}.html", "book", f"book: {entry}", source,
                          notebook=source is not None and source.suffix == ".ipynb", site=html_dir))
    return pages


def jupyter_pages(jupyter_dir: Path, root: Path = ROOT) -> list[Page]:
    pages = []
    for entry in toc_entries(root):
        source = source_of(entry, root)
        if source is not None and source.suffix == ".ipynb":
            pages.append(Page(jupyter_dir / f"{source.stem}.html", "jupyter", f"jupyter: {source.name}", source,
                              site=jupyter_dir))
    return pages


# --- static checks, read from the HTML files --------------------------------------------------------------------


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []
        self.loads: list[str] = []   # script src and stylesheet/preload/icon href

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        a = {k: v or "" for k, v in attrs}
        for key in ("id", "name") if tag == "a" else ("id",):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "script" and a.get("src"):
            self.loads.append(a["src"])
        elif tag == "link" and a.get("href") and set(a.get("rel", "").lower().split()) & {
                "stylesheet", "preload", "modulepreload", "icon", "prefetch", "preconnect"}:
            self.loads.append(a["href"])
        elif tag in {"img", "iframe", "source", "video", "audio"} and a.get("src"):
            self.loads.append(a["src"])


_SCANS: dict[Path, _Scan] = {}


def scan(path: Path) -> _Scan:
    if path not in _SCANS:
        parser = _Scan()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _SCANS[path] = parser
    return _SCANS[path]


def _has_id(target: Path, fragment: str) -> bool:
    """Whether a browser finds `#fragment` in target: the HTML standard tries the fragment as written, then
    percent-decoded (nbconvert writes ids percent-encoded, Sphinx plain)."""
    ids = scan(target).ids
    return fragment in ids or unquote(fragment) in ids


def check_links(page: Page) -> list[Failure]:
    """Every internal link's file exists inside the site and its #fragment is an id there."""
    failures = []
    here = page.path.resolve()
    site = (page.site or page.path.parent).resolve()
    for href in dict.fromkeys(scan(page.path).links):
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or not href or href == "#":
            continue
        target = here if not parts.path else (here.parent / unquote(parts.path)).resolve()
        if parts.path.endswith("/") or target.is_dir():
            target = target / "index.html"
        if page.kind == "jupyter" and target.suffix == ".ipynb":
            target = target.with_suffix(".html")  # in Jupyter a link to a notebook opens that notebook
        if not target.is_file():
            failures.append(Failure(page.label, "link", f"link {href!r} points to a missing file"))
        elif not target.is_relative_to(site):
            failures.append(Failure(page.label, "link", f"link {href!r} leaves the built site ({target})"))
        elif parts.fragment and target.suffix == ".html" and not _has_id(target, parts.fragment):
            failures.append(Failure(page.label, "link",
                                    f"link {href!r}: no id {parts.fragment!r} in {target.name}"))
    return failures


def check_colab(page: Page) -> list[Failure]:
    """A chapter page has a Colab launch button, and it opens this chapter's notebook."""
    colab = [href for href in scan(page.path).links if "colab.research.google.com" in href]
    if not colab:
        return [Failure(page.label, "colab", "no Colab launch button (link to colab.research.google.com)")]
    if page.source is not None and page.source.resolve().is_relative_to(ROOT):
        notebook = page.source.resolve().relative_to(ROOT).as_posix()
        if not any(urlsplit(href).path.endswith("/" + notebook) for href in colab):
            return [Failure(page.label, "colab", f"the Colab button opens {colab[0]}, not {notebook}")]
    return []


def check_static(page: Page) -> list[Failure]:
    if not page.path.is_file():
        return [Failure(page.label, "built", f"{page.path} does not exist: run `make book` (and `make jupyter-view`)")]
    failures = check_links(page)
    for url in scan(page.path).loads:
        if re.match(r"(?i)^(https?:)?//", url):
            failures.append(Failure(page.label, "offline", f"loads {url} from the network"))
    if page.notebook and page.kind == "book":
        failures += check_colab(page)
    if page.source is not None and page.source.stat().st_mtime > page.path.stat().st_mtime + 1:
        failures.append(Failure(page.label, "built", f"{page.path.name} is older than {page.source.name}: "
                                "rebuild (`make book`, `make jupyter-view`)"))
    return failures


# --- running Chromium ------------------------------------------------------------------------------------------


def instrumented_copy(page: Page, work: Path) -> Path:
    """A copy of the page that loads its files from the original folder and runs the check script first."""
    text = page.path.read_text(encoding="utf-8")
    base = page.path.resolve().parent.as_uri() + "/"
    inject = (f'<base href="{html.escape(base)}">\n<script>\n{CHECK_JS.read_text(encoding="utf-8")}\n</script>\n')
    match = re.search(r"<head[^>]*>", text, flags=re.IGNORECASE)
    text = text[:match.end()] + "\n" + inject + text[match.end():] if match else inject + text
    name = re.sub(r"[^\w.-]+", "_", page.label) + ".html"
    copy = work / "pages" / name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(text, encoding="utf-8")
    return copy


def run_chromium(chromium: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="browser-check-profile-") as profile:
        return subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)


def page_report(chromium: str, copy: Path, width: int, budget_ms: int, timeout: float) -> dict | None:
    result = run_chromium(chromium, [f"--window-size={width},1000", f"--virtual-time-budget={budget_ms}",
                                     "--dump-dom", copy.as_uri()], timeout)
    match = re.search(r'<script type="application/json" id="browser-check-report">(.*?)</script>', result.stdout,
                      flags=re.DOTALL)
    return json.loads(match.group(1)) if match else None


def screenshot(chromium: str, copy: Path, width: int, height: int, target: Path, budget_ms: int,
               timeout: float) -> bool:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    run_chromium(chromium, [f"--window-size={width},{min(max(height, 600), MAX_SHOT_HEIGHT)}",
                            f"--virtual-time-budget={budget_ms}", f"--screenshot={target}", copy.as_uri()], timeout)
    return target.is_file()


# --- turning a report into failures ------------------------------------------------------------------------------


def snippet(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 40):end + 40].split())


def check_report(page: Page, width: int, report: dict) -> list[Failure]:  # noqa: C901
    def fail(check: str, message: str) -> None:
        failures.append(Failure(page.label, check, message, width))

    failures: list[Failure] = []
    for message in report["console"]:
        fail("console", message)
    for resource in report["resources"]:
        fail("resource", f"failed to load: {resource}")
    for image in report["images"]:
        fail("image", f"image did not load: {image}")
    for font in report["fonts"]:
        fail("resource", f"font {font!r} failed to load")
    for url in report["network"]:
        fail("offline", f"requested from the network: {url}")
    text = report["text_math"]
    if report["math_elements"] and not report["mjx"]:
        fail("math", f"{report['math_elements']} math elements but MathJax typeset nothing "
                     f"(MathJax {'loaded' if report['mathjax'] else 'not loaded'})")
    for pattern, what in RAW_MATH:
        for match in list(pattern.finditer(text))[:3]:
            fail("math", f"raw {what} in the text: ...{snippet(text, match.start(), match.end())}...")
    for error in report["math_errors"]:
        fail("math", f"MathJax error: {error}")
    text = report["text_markup"]
    for pattern, what in MARKUP:
        for match in pattern.finditer(text):
            fail("markup", f"{what} shows as text: ...{snippet(text, match.start(), match.end())}...")
    for fenced in report["fenced_directives"]:
        fail("markup", f"a fenced MyST directive shows as a code block: ```{fenced}")
    if report["widget_views"] and report["widgets_rendered"] < report["widget_views"]:
        fail("widgets", f"{report['widget_views'] - report['widgets_rendered']} of {report['widget_views']} stored "
                        "widget views did not render" + ("" if report["widget_state"] else " (no widget state)"))
    for item in report["overflows"]:
        where = f" in {item['where']!r}" if item["where"] else ""
        head = (f"{item['kind']} block{where} is {item['width']} px wide in {item['room']} px: cut off on the right")
        if item.get("lines"):
            head += f" (room for {item['fit']} characters); too long:"
            lines = [f"      line {x['line']} ({x['length']} chars): {x['text']}" for x in item["lines"]]
            if item.get("more"):
                lines.append(f"      ... and {item['more']} more lines")
            head += "\n" + "\n".join(lines)
        elif item.get("text"):
            head += f": {item['text']}"
        fail("overflow", head)
    return failures


def wrapped_notes(page: Page, reports: dict[int, dict]) -> list[str]:
    """Output blocks whose lines wrap (wider than the page), merged over the window widths."""
    merged: dict[tuple, dict] = {}
    for width, report in reports.items():
        for item in report.get("wrapped_outputs", []):
            entry = merged.setdefault((item["where"], item["lines"][0]["text"]), {"widths": [], "lines": {}})
            entry["widths"].append(f"{width} px ({item['fit']} columns)")
            entry["lines"].update({x["line"]: x for x in item["lines"]})
    notes = []
    for (where, _), entry in merged.items():
        lines = "; ".join(f"line {x['line']} ({x['length']} chars): {x['text'][:60]}"
                          for _, x in sorted(entry["lines"].items())[:3])
        more = f" and {len(entry['lines']) - 3} more" if len(entry["lines"]) > 3 else ""
        notes.append(f"{page.label}: output{' in ' + repr(where) if where else ''} wraps at "
                     f"{', '.join(entry['widths'])}: {lines}{more}")
    return notes


# --- the whole run -------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    failures: list[Failure]
    notes: list[str]
    reports: dict
    screenshots: list[Path]


def check_page(chromium: str, page: Page, widths: list[int], work: Path, shots: Path | None, shot_width: int,
               budget_ms: int, timeout: float) -> tuple[list[Failure], list[str], dict, Path | None]:
    failures = check_static(page)
    if not page.path.is_file():
        return failures, [], {}, None
    copy = instrumented_copy(page, work)
    reports, shot = {}, None
    for width in widths:
        try:
            report = page_report(chromium, copy, width, budget_ms, timeout)
        except subprocess.TimeoutExpired:
            report = None
        if report is None:
            failures.append(Failure(page.label, "browser", f"the page did not finish loading within the check's "
                                    f"{budget_ms / 1000:.0f} s (virtual) budget, or Chromium failed", width))
            continue
        reports[width] = report
        failures += check_report(page, width, report)
    notes = wrapped_notes(page, reports)
    if shots is not None and reports:
        height = reports.get(shot_width, next(iter(reports.values())))["height"]
        target = shots / page.kind / f"{page.path.stem}.png"
        try:
            shot = target if screenshot(chromium, copy, shot_width, height, target, budget_ms, timeout) else None
        except subprocess.TimeoutExpired:
            shot = None
        if shot is None:
            failures.append(Failure(page.label, "browser", f"no screenshot could be taken into {target}"))
    return failures, notes, {str(w): r for w, r in reports.items()}, shot


def check_pages(pages: list[Page], widths: list[int] | dict[str, list[int]], out: Path, *, shots: bool = True,
                jobs: int = 2, budget_ms: int = 15000, timeout: float = 120, chromium: str | None = None) -> Result:
    """Check every page at its kind's widths (a list: the same for all); screenshots at the first width."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(INSTALL_HINT)
    out.mkdir(parents=True, exist_ok=True)
    per_kind = widths if isinstance(widths, dict) else {}
    result = Result([], [], {}, [])
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {}
        for page in pages:
            page_widths = per_kind.get(page.kind, [1280]) if per_kind else list(widths)
            futures[pool.submit(check_page, chromium, page, page_widths, out, out if shots else None,
                                page_widths[0], budget_ms, timeout)] = page
        for future in concurrent.futures.as_completed(futures):
            failures, notes, reports, shot = future.result()
            page = futures[future]
            result.failures += failures
            result.notes += notes
            result.reports[page.label] = {"path": str(page.path), "reports": reports}
            if shot is not None:
                result.screenshots.append(shot)
    order = {page.label: i for i, page in enumerate(pages)}
    result.failures.sort(key=lambda f: (order.get(f.page, len(order)), f.check, f.width or 0))
    result.notes.sort(key=lambda n: order.get(n.split(": output")[0], len(order)))
    return result


def print_result(result: Result, pages: list[Page], elapsed: float, out=sys.stdout) -> None:
    by_page: dict[str, list[Failure]] = {}
    for failure in result.failures:
        by_page.setdefault(failure.page, []).append(failure)
    for page in pages:
        problems = by_page.get(page.label, [])
        print(f"{'FAIL' if problems else 'ok  '} {page.label} ({page.path})", file=out)
        for failure in problems:
            print(f"    {failure}", file=out)
    if result.notes:
        print("\nNotes (not failures): output lines wider than the page, which wrap:", file=out)
        for note in result.notes:
            print(f"    {note}", file=out)
    failed = len(by_page)
    print(f"\nbrowser test: {len(pages)} pages, {failed} failing, {len(result.failures)} problems, "
          f"{elapsed:.0f} s; screenshots in {sorted({str(s.parent.parent) for s in result.screenshots}) or '-'}",
          file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--book", type=Path, default=ROOT / "_build" / "html", help="the built book")
    parser.add_argument("--jupyter", type=Path, default=ROOT / "_build" / "jupyter", help="the Jupyter view")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "browser", help="screenshots and report")
    parser.add_argument("--widths", default="800,1280",
                        help="window widths of the book's pages in px; screenshots at the first (%(default)s)")
    parser.add_argument("--jupyter-widths", default="1280",
                        help="window widths of the Jupyter view's pages (default: %(default)s)")
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--jobs", type=int, default=2, help="pages checked at once (default: %(default)s)")
    parser.add_argument("--budget-ms", type=int, default=15000, help="virtual time a page gets to settle")
    parser.add_argument("--only", help="check only pages whose label contains this text")
    args = parser.parse_args(argv)

    chromium = find_chromium()
    if chromium is None:
        if opted_out():
            print(f"browser test SKIPPED: Chromium is missing and {OPT_OUT_VAR}=skip opts out. {INSTALL_HINT}.")
            return 0
        print(f"browser test FAILED: {INSTALL_HINT}.", file=sys.stderr)
        return 1
    pages = book_pages(args.book) + jupyter_pages(args.jupyter)
    if args.only:
        pages = [p for p in pages if args.only in p.label]
    start = time.monotonic()
    widths = {"book": [int(w) for w in args.widths.split(",") if w.strip()],
              "jupyter": [int(w) for w in args.jupyter_widths.split(",") if w.strip()]}
    result = check_pages(pages, widths, args.out, shots=not args.no_screenshots, jobs=args.jobs,
                         budget_ms=args.budget_ms, chromium=chromium)
    (args.out / "report.json").write_text(json.dumps(
        {"failures": [dataclasses.asdict(f) for f in result.failures], "notes": result.notes,
         "pages": result.reports}, indent=1, default=str), encoding="utf-8")
    print_result(result, pages, time.monotonic() - start)
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
