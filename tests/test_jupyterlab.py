"""The interactive path: a chapter opens in JupyterLab with the book's kernel, and runs top
to bottom in a plain kernel (no papermill) when only its parameters cell is edited."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from lib import bookcheck
from lib.core.paths import REPO_ROOT
from lib.reproduce import chapters_in_toc

TOKEN = "book-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    port = _free_port()
    home = tmp_path_factory.mktemp("jupyter-home")
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "HOME": str(home)}
    cmd = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={REPO_ROOT / 'chapters'}",
           "--LabApp.news_url=", "--ServerApp.open_browser=False", "--allow-root",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    base = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(f"{base}api/status?token={TOKEN}", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"JupyterLab did not start:\n{proc.stdout.read()[-3000:]}")
            time.sleep(0.5)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.skipif(not bookcheck.browser_available(), reason="needs chromium (make browser-deps)")
def test_a_chapter_opens_in_jupyterlab_with_the_books_kernel(jupyterlab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    with bookcheck.chromium() as driver:
        driver.get(f"{jupyterlab}lab/tree/foundations.ipynb?token={TOKEN}")
        wait = WebDriverWait(driver, 120)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel")))
        wait.until(lambda d: "Python 3 (book)" in d.execute_script(
            "return [...document.querySelectorAll('.jp-KernelName, .jp-Toolbar-kernelName')]"
            ".map(e => e.innerText).join(' ')"))
        wait.until(lambda d: d.execute_script(
            "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            "return s && s.getAttribute('data-status') === 'idle';"))
        dialogs = driver.find_elements(By.CSS_SELECTOR, ".jp-Dialog")
        assert not dialogs, f"a dialog is open: {[d.text[:200] for d in dialogs]}"
        errors = driver.execute_script(
            "return [...document.querySelectorAll('.Toastify__toast--error, "
            ".jp-Notification-Toast-error, .jp-ErrorBanner')].map(e => e.innerText)")
        assert not errors, f"error banners: {errors}"
        cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Cell")
        assert len(cells) > 5, "the notebook's cells are shown"


def _with_scale(nb: nbformat.NotebookNode, scale: str) -> nbformat.NotebookNode:
    cell = next(c for c in nb.cells
                if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    assigned = [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets]
    assert "scale" in assigned
    lines = cell.source.splitlines()
    cell.source = "\n".join(f'scale = "{scale}"' if line.startswith("scale =") else line
                            for line in lines)
    return nb


#: The interactive path is the same for every chapter (tests/test_chapters.py runs each one
#: through papermill): two chapters, one small and one that trains and plots, keep the
#: suite's time in bounds.
PLAIN_KERNEL_CHAPTERS = [c for c in ("foundations", "prune_quant") if c in chapters_in_toc()]


@pytest.mark.chapter
@pytest.mark.parametrize("chapter", PLAIN_KERNEL_CHAPTERS)
def test_a_chapter_runs_in_a_plain_kernel_with_only_its_parameters_cell_edited(chapter,
                                                                             tmp_path):
    from nbclient import NotebookClient

    nb = _with_scale(nbformat.read(REPO_ROOT / "chapters" / f"{chapter}.ipynb", as_version=4),
                     "smoke")
    os.environ["BOOK_RESULTS_DIR"] = str(tmp_path)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO_ROOT / "chapters")}})
    client.execute()  # raises CellExecutionError naming the cell on any failure
    assert (tmp_path / f"{chapter}-smoke.json").exists(), "the chapter wrote its record"
