"""The rendered book, checked as a reader sees it: every page opened in headless Chromium.

``check_book(html_dir)`` serves the built HTML on 127.0.0.1 and opens every page of
``_toc.yml`` in Debian's ``chromium`` through its own ``chromedriver`` (Selenium; nothing
downloads a browser). On each page it checks what a reader would notice:

* no Python traceback or error output in any cell;
* every image loads (``naturalWidth > 0``);
* math is rendered (MathJax typeset it; no raw ``$...$``, ``\\(``, ``\\[`` or ``\\begin``
  left in the text, nor in the navigation);
* every internal link and anchor resolves;
* the left navigation lists every chapter;
* no errors in the browser console;
* at phone width (390 px) nothing but wide tables and code scrolls sideways;
* a full-page screenshot at desktop and phone width under ``screenshot_dir``.

``python -m lib.bookcheck [_build/html]`` prints the problems and exits non-zero if any.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import re
import shutil
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import yaml

from lib.core import paths

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)
PHONE = (390, 844)
#: Chromium flags for a closed network: no background traffic, no first-run work.
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--hide-scrollbars")
RAW_MATH = re.compile(r"(\\\(|\\\[|\\begin\{|\$\$|(?<![\w$])\$[^$\s][^$]*\$(?![\w$]))")


@dataclass
class PageReport:
    page: str
    problems: list[str] = field(default_factory=list)
    screenshots: list[str] = field(default_factory=list)


def browser_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def toc_pages(root: Path = paths.REPO_ROOT) -> list[str]:
    """The pages of ``_toc.yml`` as paths relative to the HTML root (``chapters/x.html``)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [f"{Path(toc['root']).with_suffix('')}.html"]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("file"), str):
                pages.append(f"{Path(node['file']).with_suffix('')}.html")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return pages


@contextmanager
def serve_directory(directory: Path):
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # a browser that hung up: fine


@contextmanager
def chromium(width: int = DESKTOP[0], height: int = DESKTOP[1]):
    """A headless Chromium driven by the system chromedriver, console logs captured."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not browser_available():
        raise FileNotFoundError(f"{CHROMIUM} or {CHROMEDRIVER} missing: install Debian's "
                                f"chromium and chromium-driver (make browser-deps)")
    profile = tempfile.mkdtemp(prefix="bookcheck-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    _emulate(driver, width, height)  # a window is at least 500 px wide: emulate a phone
    driver.size = (width, height)
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait_ready(driver) -> None:
    """Until the document loaded, MathJax typeset, and every image settled."""
    driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const settle = () => Promise.all([...document.images].map(img => img.complete ? 1 :
            new Promise(r => { img.onload = img.onerror = r; })));
        const mj = (window.MathJax && MathJax.startup && MathJax.startup.promise) ||
                   Promise.resolve();
        const go = () => mj.then(settle).then(() => done(true), () => done(false));
        if (document.readyState === 'complete') go(); else window.addEventListener('load', go);
    """)


_PAGE_SCRIPT = """
const article = document.querySelector('article.bd-article') || document.body;
const errors = [...article.querySelectorAll(
    '.cell_output .output.error, .cell_output .output.traceback, div.output.error')]
    .map(e => e.innerText.slice(0, 200));
const tracebacks = [...article.querySelectorAll('.cell_output')]
    .filter(e => /Traceback \\(most recent call last\\)/.test(e.innerText))
    .map(e => e.innerText.slice(0, 200));
const images = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => i.getAttribute('src'));
const clone = article.cloneNode(true);
clone.querySelectorAll('pre, code, .highlight, script, style, mjx-container, .MathJax, '
                       + 'mjx-assistive-mml, .cell_input, .cell_output, textarea')
     .forEach(e => e.remove());
const nav = document.querySelector('nav.bd-docs-nav, .bd-sidebar-primary') || document.body;
const navLinks = [...nav.querySelectorAll('a')].map(a => a.getAttribute('href'));
const links = [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));
const mathSource = article.querySelectorAll('.math, span.math, div.math').length;
const mathRendered = article.querySelectorAll('mjx-container').length;
return {errors, tracebacks, images, text: clone.innerText, navText: nav.innerText,
        navLinks, links, mathSource, mathRendered,
        scrollWidth: document.documentElement.scrollWidth,
        innerWidth: document.documentElement.clientWidth,
        downloads: [...document.querySelectorAll('a[href$=".ipynb"]')].length};
"""


def _emulate(driver, width: int, height: int) -> None:
    """Lay the page out at ``width x height`` CSS pixels (a phone is also ``mobile``)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})


def _screenshot(driver, path: Path, width: int, height: int) -> None:
    """The whole page: the viewport stretched to the page's height, then captured (what a
    reader scrolling down would see, fixed headers and sidebars in place)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    size = metrics.get("cssContentSize") or metrics["contentSize"]
    full = int(min(max(size["height"], height), 16000))
    _emulate(driver, width, full)
    try:
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        _emulate(driver, width, height)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=512)
def _anchors_of(url: str) -> frozenset[str] | None:
    """Ids in the page at ``url``, or None if it does not load."""
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            parser = _Anchors()
            parser.feed(response.read().decode("utf-8", "replace"))
            return frozenset(parser.ids)
    except OSError:
        return None


def _check_links(base: str, page_url: str, hrefs: list[str]) -> list[str]:
    problems = []
    for href in sorted(set(hrefs)):
        if not href or href.startswith(("mailto:", "javascript:", "data:")):
            continue
        absolute = urllib.parse.urljoin(page_url, href)
        if not absolute.startswith(base):
            continue  # an outside link: not ours to resolve offline
        target, _, fragment = absolute.partition("#")
        path = urllib.parse.urlparse(target).path
        if not path.endswith((".html", "/")) and "." in Path(path).name:
            try:  # a file (download, image, script): it must exist
                urllib.request.urlopen(target, timeout=20).close()
            except OSError:
                problems.append(f"broken link {href!r} (no file)")
            continue
        ids = _anchors_of(target)
        if ids is None:
            problems.append(f"broken link {href!r} (no page)")
        elif fragment and urllib.parse.unquote(fragment) not in ids:
            problems.append(f"broken anchor {href!r} (no id {fragment!r} in the page)")
    return problems


def check_page(driver, base: str, page: str, *, chapters: list[str] | None = None,
               screenshot: Path | None = None, phone_driver=None,
               notebooks: frozenset[str] = frozenset()) -> PageReport:
    """Open ``page`` and list what a reader would see wrong with it."""
    report = PageReport(page)
    url = urllib.parse.urljoin(base, page)
    driver.get(url)
    _wait_ready(driver)
    seen = driver.execute_script(_PAGE_SCRIPT)
    report.problems += [f"error output in a cell: {e!r}" for e in seen["errors"]]
    report.problems += [f"a traceback in a cell: {t!r}" for t in seen["tracebacks"]]
    report.problems += [f"image does not load: {src}" for src in seen["images"]]
    for where, text in (("text", seen["text"]), ("navigation", seen["navText"])):
        raw = RAW_MATH.search(text)
        if raw:
            start = max(0, raw.start() - 40)
            report.problems.append(f"raw math in the {where}: {text[start:raw.end() + 40]!r}")
    if seen["mathSource"] and not seen["mathRendered"]:
        report.problems.append(f"{seen['mathSource']} math elements, none typeset by MathJax")
    report.problems += _check_links(base, url, seen["links"])
    if page.startswith("chapters/") and (Path(page).stem in notebooks) and not seen["downloads"]:
        report.problems.append("no download link for the chapter's notebook (.ipynb)")
    if chapters:
        listed = {urllib.parse.urljoin(url, h).split("#")[0] for h in seen["navLinks"] if h}
        missing = [c for c in chapters if urllib.parse.urljoin(base, c) not in listed]
        if missing:
            report.problems.append(f"the navigation does not list {missing}")
    for entry in driver.get_log("browser"):
        # the browser asks for /favicon.ico by itself: not the page's fault
        if entry.get("level") == "SEVERE" and "favicon.ico" not in entry.get("message", ""):
            report.problems.append(f"console error: {entry.get('message', '')[:200]}")
    if screenshot is not None:
        _screenshot(driver, screenshot.with_name(screenshot.stem + "-desktop.png"), *DESKTOP)
        report.screenshots.append(str(screenshot.with_name(screenshot.stem + "-desktop.png")))
    if phone_driver is not None:
        phone_driver.get(url)
        _wait_ready(phone_driver)
        narrow = phone_driver.execute_script(_PAGE_SCRIPT)
        if narrow["scrollWidth"] > narrow["innerWidth"] + 1:
            wide = phone_driver.execute_script("""
                const w = document.documentElement.clientWidth;
                return [...document.querySelectorAll('body *')].filter(e => {
                    const r = e.getBoundingClientRect();
                    return r.right > w + 1 && !e.closest('pre, table, .highlight, '
                        + '.book-table-scroll, mjx-container, .cell_output');
                }).slice(0, 3).map(e => e.tagName + '.' + e.className);""")
            report.problems.append(f"at {PHONE[0]} px the page scrolls sideways "
                                   f"({narrow['scrollWidth']} px wide; {wide})")
        if screenshot is not None:
            _screenshot(phone_driver, screenshot.with_name(screenshot.stem + "-phone.png"),
                        *PHONE)
            report.screenshots.append(str(screenshot.with_name(screenshot.stem + "-phone.png")))
    return report


def check_book(html_dir: Path, pages: list[str] | None = None,
               screenshot_dir: Path | None = None) -> list[PageReport]:
    """Every page of ``pages`` (default: the toc's) in ``html_dir``; one report each."""
    html_dir = Path(html_dir)
    pages = pages or toc_pages()
    chapters = [p for p in pages if p.startswith("chapters/")]
    notebooks = frozenset(p.stem for p in (paths.REPO_ROOT / "chapters").glob("*.ipynb"))
    reports = []
    with serve_directory(html_dir) as base, chromium(*DESKTOP) as desktop, \
            chromium(*PHONE) as phone:
        for page in pages:
            if not (html_dir / page).exists():
                reports.append(PageReport(page, [f"{page} was not rendered"]))
                continue
            shot = None if screenshot_dir is None else Path(screenshot_dir) / (
                page.replace("/", "__").removesuffix(".html") + ".png")
            reports.append(check_page(desktop, base, page, chapters=chapters,
                                      screenshot=shot, phone_driver=phone,
                                      notebooks=notebooks))
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.bookcheck", description=__doc__)
    parser.add_argument("html", nargs="?", default=str(paths.REPO_ROOT / "_build" / "html"))
    parser.add_argument("--screenshots", default=str(paths.REPO_ROOT / "_build" / "screenshots"))
    parser.add_argument("--json", default=None, help="write the reports as JSON here")
    args = parser.parse_args(argv)
    reports = check_book(Path(args.html), screenshot_dir=Path(args.screenshots))
    bad = [r for r in reports if r.problems]
    for r in reports:
        print(f"{'FAIL' if r.problems else 'ok  '} {r.page}")
        for problem in r.problems:
            print(f"       {problem}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in reports], indent=1))
    print(f"{len(reports) - len(bad)} of {len(reports)} pages clean; screenshots in "
          f"{args.screenshots}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
