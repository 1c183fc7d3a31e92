"""The browser checker itself: it must fail on a page with a broken image, with an error
cell, with raw math, with a broken anchor, and pass a clean page (headless Chromium).

The rendered book is checked by ``make test-browser`` (``python -m lib.bookcheck``) after
the smoke-scale build; these tests prove the checker can fail.
"""

import pytest

from lib import bookcheck

pytestmark = pytest.mark.skipif(not bookcheck.browser_available(),
                                reason="Debian's chromium and chromium-driver are needed "
                                       "(make browser-deps)")

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e5277ede0000000049454e44ae426082")


def _page(body: str, nav: str = "") -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>t</title>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'></head><body>"
            f"<nav class='bd-docs-nav'>{nav}</nav><main><article class='bd-article'>{body}"
            f"</article></main></body></html>")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "chapters").mkdir()
    (root / "ok.png").write_bytes(PNG_1PX)
    nav = "<a href='/chapters/good.html'>good</a><a href='/chapters/bad.html'>bad</a>"
    pages = {
        "chapters/good.html": _page("<h1 id='top'>Good</h1><p>Fine <a href='#top'>up</a> "
                                    "<a href='../chapters/bad.html#here'>there</a></p>"
                                    "<img src='../ok.png'><div class='cell_output'>"
                                    "<pre>1 + 1 = 2</pre></div>", nav),
        "chapters/bad.html": _page(
            "<h1 id='here'>Bad</h1><img src='../missing.png'>"
            "<div class='cell_output'><div class='output error'>ZeroDivisionError</div>"
            "<pre>Traceback (most recent call last):\n  File ...</pre></div>"
            "<p>the energy $E = mc^2$ unrendered, and \\begin{align} too</p>"
            "<a href='good.html#nowhere'>a broken anchor</a>", nav),
        "index.html": _page("<p>home</p>", nav),
    }
    for name, html in pages.items():
        (root / name).write_text(html)
    return root


def test_the_checker_passes_a_clean_page_and_fails_a_broken_one(site, tmp_path):
    reports = {r.page: r for r in bookcheck.check_book(
        site, ["chapters/good.html", "chapters/bad.html"], screenshot_dir=tmp_path)}
    assert reports["chapters/good.html"].problems == []
    bad = " | ".join(reports["chapters/bad.html"].problems)
    assert "image does not load: ../missing.png" in bad
    assert "error output in a cell" in bad and "a traceback in a cell" in bad
    assert "raw math in the text" in bad
    assert "broken anchor 'good.html#nowhere'" in bad
    shots = sorted(p.name for p in tmp_path.iterdir())
    assert shots == ["chapters__bad-desktop.png", "chapters__bad-phone.png",
                     "chapters__good-desktop.png", "chapters__good-phone.png"]
    assert all((tmp_path / s).read_bytes()[:4] == b"\x89PNG" for s in shots)


def test_the_checker_notices_a_chapter_missing_from_the_navigation(site):
    (report,) = bookcheck.check_book(site, ["chapters/good.html", "chapters/other.html"])[:1]
    assert any("does not list ['chapters/other.html']" in p for p in report.problems)


def test_a_page_wider_than_a_phone_is_reported(tmp_path):
    (tmp_path / "wide.html").write_text(_page("<p style='width: 1200px'>a very wide "
                                              "paragraph of text</p>"))
    (report,) = bookcheck.check_book(tmp_path, ["wide.html"])
    assert any("scrolls sideways" in p for p in report.problems)
