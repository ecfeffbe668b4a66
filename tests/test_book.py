"""The book: published chapters match their sources, and the HTML works in a browser.

* Drift: every source chapter ``notebooks/NN_*.md`` (MyST Markdown, read with
  jupytext) has a published, executed chapter ``book/chapters/NN_*.ipynb`` (and
  the table of contents names exactly these), with the same code and markdown cells (papermill's injected-parameters
  cell aside), executed without errors at a real profile (not ``smoke``), with
  the widget state every widget view needs.
* Browser: the HTML is built from the committed chapters into a temporary folder
  (``scripts/build_book.py``: warnings are errors), served on 127.0.0.1 and opened
  in headless Chromium (Debian's ``chromium`` + ``chromium-driver``, installed
  with apt when missing). Every page must load without JavaScript errors or
  failed requests, fetch nothing from the internet, show every figure of its
  notebook with real pixels, and the chapter 5 page must render the block-count
  slider and change the displayed outputs when it is moved, without a kernel.
"""
from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "notebooks"
CHAPTERS = REPO / "book" / "chapters"
ABLATION = "05_residual_blocks"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# MyST-NB's HTML render priority, highest first (myst_nb.core.config, builder "html").
RENDER_PRIORITY = [WIDGET_VIEW, "application/javascript", "text/html", "image/svg+xml",
                   "image/png", "image/jpeg", "text/markdown", "text/latex", "text/plain"]
IMAGE_MIMES = {"image/svg+xml", "image/png", "image/jpeg"}
REMOVE_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell", "hide-output"}


def _toc_pages() -> list[str]:
    """Every ``file:`` of _toc.yml in order (root first), without suffix."""
    text = (REPO / "_toc.yml").read_text()
    root = re.search(r"^root:\s*(\S+)", text, re.M)
    files = re.findall(r"^\s*-\s*file:\s*(\S+)", text, re.M)
    return ([root.group(1)] if root else []) + files


def _toc_chapters() -> list[str]:
    return [Path(p).stem for p in _toc_pages() if p.startswith("book/chapters/")]


CHAPTER_NAMES = _toc_chapters()


def _read(path: Path) -> dict:
    """A notebook as a dict: ``.ipynb`` as JSON, a ``.md`` chapter source through jupytext."""
    if path.suffix == ".md":
        import jupytext

        return json.loads(json.dumps(jupytext.read(path)))
    return json.loads(path.read_text(encoding="utf-8"))


def _sources() -> list[Path]:
    return sorted(SOURCES.glob("[0-9][0-9]_*.md"))


def _tags(cell: dict) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []) or [])


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return ("".join(src) if isinstance(src, list) else src).rstrip()


def _cells(nb: dict, kind: str) -> list[str]:
    return [_source(c) for c in nb["cells"]
            if c["cell_type"] == kind and "injected-parameters" not in _tags(c)]


def _first_difference(published: list[str], source: list[str]) -> str:
    for i, (a, b) in enumerate(zip(published, source)):
        if a != b:
            return f"cell {i} differs:\n--- published\n{a}\n--- source\n{b}"
    return f"{len(published)} cells published, {len(source)} in the source"


# -- drift ----------------------------------------------------------------------------

def test_toc_sources_and_published_chapters_agree():
    assert CHAPTER_NAMES, "_toc.yml names no book/chapters/ pages"
    assert not list(SOURCES.glob("*.ipynb")), "notebooks/ holds .ipynb files: sources are .md"
    sources = sorted(p.stem for p in _sources())
    published = sorted(p.stem for p in CHAPTERS.glob("*.ipynb"))
    assert sources == sorted(CHAPTER_NAMES), (
        f"_toc.yml chapters {CHAPTER_NAMES} != source notebooks {sources} in notebooks/")
    missing = sorted(set(sources) - set(published))
    assert not missing, (f"no published chapter for {missing} in book/chapters: "
                         "run ./dev.sh book (or --only NAME) and commit book/chapters")
    extra = sorted(set(published) - set(sources))
    assert not extra, f"published chapters without a source notebook: {extra}"


@pytest.mark.parametrize("name", CHAPTER_NAMES)
def test_published_chapter_has_the_source_cells(name):
    src, pub = SOURCES / f"{name}.md", CHAPTERS / f"{name}.ipynb"
    assert src.is_file(), f"missing source notebook {src.relative_to(REPO)}"
    assert pub.is_file(), f"missing published chapter {pub.relative_to(REPO)}: run ./dev.sh book"
    source, published = _read(src), _read(pub)
    hint = f"book/chapters/{name}.ipynb is stale: re-run ./dev.sh book --only {name}"
    code_src, code_pub = _cells(source, "code"), _cells(published, "code")
    assert code_pub == code_src, f"{hint}\n{_first_difference(code_pub, code_src)}"
    md_src, md_pub = _cells(source, "markdown"), _cells(published, "markdown")
    assert md_pub == md_src, f"{hint}\n{_first_difference(md_pub, md_src)}"


@pytest.mark.parametrize("name", CHAPTER_NAMES)
def test_published_chapter_was_executed_at_a_real_profile(name):
    pub = CHAPTERS / f"{name}.ipynb"
    if not pub.is_file():
        pytest.fail(f"missing published chapter {pub.relative_to(REPO)}: run ./dev.sh book")
    nb = _read(pub)
    params = nb["metadata"].get("papermill", {}).get("parameters")
    assert params is not None, f"{name}: not executed by papermill (scripts/build_book.py)"
    assert params.get("profile") not in (None, "smoke"), (
        f"{name} was published at profile {params.get('profile')!r}; publish the cpu "
        "(or full) execution: ./dev.sh book")
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    unexecuted = [i for i, c in enumerate(code) if _source(c) and c.get("execution_count") is None]
    assert not unexecuted, f"{name}: code cells {unexecuted} were not executed"
    errors = [o.get("ename") for c in code for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{name}: published with errors {errors}"
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    views = [o["data"][WIDGET_VIEW]["model_id"] for c in code for o in c.get("outputs", [])
             if WIDGET_VIEW in o.get("data", {})]
    missing = [v for v in views if v not in state]
    assert not missing, f"{name}: widget views without saved state: {missing}"
    if name == ABLATION:
        assert views, f"{name}: no widget (the block-count slider) in the published chapter"


def source_outputs(nb: dict) -> list[dict]:
    """The outputs of ``page.show_source`` calls in an executed notebook."""
    return [out for cell in nb["cells"] for out in cell.get("outputs", [])
            if "library-source" in "".join(out.get("data", {}).get("text/html", ""))]


@pytest.mark.parametrize("name", CHAPTER_NAMES)
def test_published_chapter_shows_the_current_library_source(name):
    """Code that a chapter shows with ``page.show_source`` is frozen into the executed
    chapter; after a change to the library the page would teach old code.  Every shown
    block must equal the live source, caption (file, line numbers) included."""
    from cyclegan_lib import page

    outputs = source_outputs(_read(CHAPTERS / f"{name}.ipynb"))
    for out in outputs:
        plain = "".join(out["data"]["text/plain"])
        names, grep = page.shown_objects(plain)
        live = page.source_output(*names, grep=grep)[1]
        assert plain.rstrip() == live.rstrip(), (
            f"book/chapters/{name}.ipynb shows an old version of {', '.join(names)}: run "
            "python scripts/build_book.py --refresh-sources (or ./dev.sh book --only "
            f"{name})\n{_first_difference(plain.splitlines(), live.splitlines())}")
    if name != "07_conclusions":  # the conclusions read results; every other chapter teaches code
        assert outputs, f"{name}: the chapter shows no library source"


def test_refresh_sources_renders_a_stale_block_again():
    """``build_book.py --refresh-sources`` puts the live source back into a stale chapter."""
    import copy
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_book", REPO / "scripts" / "build_book.py")
    build_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_book)
    published = _read(CHAPTERS / "03_stabilization.ipynb")
    stale = copy.deepcopy(published)
    data = source_outputs(stale)[0]["data"]
    data["text/plain"] = re.sub(r"lines \d+-", "lines 1-", "".join(data["text/plain"]))
    data["text/html"] = "".join(data["text/html"]).replace("def ", "def old_")
    assert build_book.refresh_sources(stale)
    assert not build_book.refresh_sources(copy.deepcopy(stale))  # now current
    for out, want in zip(source_outputs(stale), source_outputs(published)):
        for mime in ("text/plain", "text/html"):
            assert out["data"][mime] == "".join(want["data"][mime])


def _config_repository_url() -> str:
    text = (REPO / "_config.yml").read_text()
    match = re.search(r"^repository:\s*\n(?:\s+.*\n)*?\s+url:\s*(\S+)", text, re.M)
    assert match, "_config.yml has no repository.url"
    return match.group(1).rstrip("/")


def test_colab_install_cells_use_the_book_repository():
    """The chapters' Colab cell installs from ``repository.url`` of _config.yml (one URL)."""
    url = _config_repository_url()
    for path in _sources() + sorted(CHAPTERS.glob("*.ipynb")):
        code = "\n".join(_cells(_read(path), "code"))
        found = set(re.findall(r"git\+(https://github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?[\s\"'@#]",
                               code))
        assert found, f"{path.relative_to(REPO)}: no Colab install cell (pip install git+URL)"
        assert found == {url}, (f"{path.relative_to(REPO)} installs from {sorted(found)}, "
                                f"_config.yml says {url}: edit the Colab cell of every notebooks/*.md")


def test_source_notebooks_are_clean():
    """Sources are MyST notebooks with the python3 kernel and the contract's parameters."""
    sources = _sources()
    assert len(sources) == 7, f"expected seven chapters in notebooks/, found {sources}"
    for src in sources:
        nb = _read(src)
        assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", (
            f"{src.name}: front matter needs kernelspec python3")
        assert nb["metadata"].get("jupytext", {}).get("text_representation", {}).get(
            "format_name") == "myst", f"{src.name}: not a jupytext MyST notebook"
        params = [c for c in nb["cells"] if "parameters" in _tags(c)]
        assert len(params) == 1, f"{src.name}: needs exactly one cell tagged 'parameters'"
        names = re.findall(r"^(\w+)\s*=", _source(params[0]), re.M)
        assert names == ["profile", "data_dir", "runs_dir", "seed", "device"], (
            f"{src.name}: parameters cell defines {names}")


SHARED_OPENING = 4  # Colab install, parameters, set-up, pointer to the how-to-run page


def _opening(nb: dict) -> list[tuple[str, str, list[str]]]:
    """The cells after the title: (type, source, tags) of the shared opening."""
    cells = nb["cells"][1:1 + SHARED_OPENING]
    return [(c["cell_type"], _source(c), sorted(_tags(c))) for c in cells]


def test_shared_opening_cells_are_identical():
    """Every chapter opens with a title, then the same four cells (no generator script)."""
    sources = _sources()
    first = _read(sources[0])
    assert first["cells"][0]["cell_type"] == "markdown" and _source(
        first["cells"][0]).startswith("# "), f"{sources[0].name}: first cell is not the title"
    reference = _opening(first)
    kinds = [k for k, _, _ in reference]
    assert kinds == ["code", "code", "code", "markdown"], kinds
    assert "remove-cell" in reference[0][2] and "parameters" in reference[1][2]
    for src in sources[1:]:
        nb = _read(src)
        assert _source(nb["cells"][0]).startswith("# "), f"{src.name}: no title cell first"
        assert _opening(nb) == reference, (
            f"{src.name}: the four opening cells differ from {sources[0].name}'s")


def test_chapters_end_with_exercises():
    for src in _sources():
        text = src.read_text()
        assert "## Exercises" in text, f"{src.name}: no exercises section"
        tail = text[text.rindex("## Exercises"):]
        assert 2 <= len(re.findall(r"^\d+\. ", tail, re.M)) <= 4, (
            f"{src.name}: 2-4 numbered exercises expected")
        assert "Hint" in tail, f"{src.name}: exercises without hints"


def test_no_absolute_machine_paths_in_sources_or_chapters():
    """No path of the build machine on a public page (sources and executed chapters)."""
    pattern = re.compile(r"(/work/|/home/|/tmp/|/Users/|C:\\Users)")
    for path in _sources() + sorted(CHAPTERS.glob("*.ipynb")):
        nb = _read(path)
        for i, cell in enumerate(nb["cells"]):
            if "remove-cell" in _tags(cell) or "injected-parameters" in _tags(cell):
                continue
            texts = [_source(cell)]
            for out in cell.get("outputs", []) or []:
                texts.append(str(out.get("text", "")))
                texts += [str(v) for k, v in (out.get("data") or {}).items()
                          if k.startswith("text/")]
            hit = next((t for t in texts if pattern.search(t)), None)
            assert hit is None, f"{path.name} cell {i} shows a machine path: " + (
                pattern.search(hit).group(0))


# -- browser --------------------------------------------------------------------------

def _chromium_paths() -> tuple[str, str]:
    """Chromium and chromedriver, installed with apt (Debian packages) when missing."""
    chrome = os.environ.get("CYCLEGAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = (os.environ.get("CYCLEGAN_CHROMEDRIVER") or shutil.which("chromedriver")
              or "/usr/bin/chromedriver")
    if Path(chrome).exists() and Path(driver).exists():
        return chrome, driver
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail("the browser test needs Chromium and chromedriver: install Debian's "
                    "'chromium' and 'chromium-driver' (or set CYCLEGAN_CHROMIUM and "
                    "CYCLEGAN_CHROMEDRIVER); apt-get is not available here")
    prefix: list[str] = []
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            pytest.fail("the browser test needs Debian's 'chromium' and 'chromium-driver': "
                        "run `sudo apt-get install chromium chromium-driver` (not root, no sudo)")
        prefix = ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log = []
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                 "chromium", "chromium-driver"]):
        proc = subprocess.run(prefix + cmd, env=env, capture_output=True, text=True)
        log.append(f"$ {' '.join(prefix + cmd)} -> {proc.returncode}\n{proc.stderr[-2000:]}")
        if proc.returncode:
            pytest.fail("could not install Chromium for the browser test:\n" + "\n".join(log))
    chrome = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chrome).exists() and Path(driver).exists()):
        pytest.fail("apt installed chromium/chromium-driver but the binaries are missing:\n"
                    + "\n".join(log))
    return chrome, driver


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory) -> Path:
    """The book built from the committed chapters into a temporary folder."""
    missing = [n for n in CHAPTER_NAMES if not (CHAPTERS / f"{n}.ipynb").is_file()]
    if missing:
        pytest.fail(f"no published chapters {missing}: run ./dev.sh book and commit book/chapters")
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_book.py"),
                           "--path-output", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        warnings = [l for l in (proc.stdout + proc.stderr).splitlines()
                    if "WARNING" in l or "ERROR" in l or "rror" in l]
        pytest.fail("the HTML build failed (warnings are errors):\n"
                    + "\n".join(warnings[-40:] or (proc.stdout + proc.stderr).splitlines()[-40:]))
    html = out / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def server(html_dir):
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(html_dir)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chrome, driver_path = _chromium_paths()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser test needs selenium: pip install -e '.[test]'")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _expected_figures(name: str) -> int:
    """Outputs of a published chapter that MyST-NB renders as an image."""
    nb = _read(CHAPTERS / f"{name}.ipynb")
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or _tags(cell) & REMOVE_TAGS:
            continue
        for out in cell.get("outputs", []):
            data = out.get("data") or {}
            shown = next((m for m in RENDER_PRIORITY if m in data), None)
            count += shown in IMAGE_MIMES
    return count


_PAGE_STATE = """
const imgs = Array.from(document.images);
const views = document.querySelectorAll('script[type="%s"]').length;
return {
  ready: document.readyState,
  title: document.title,
  images: imgs.map(i => ({src: i.currentSrc || i.src, complete: i.complete,
                          width: i.naturalWidth, output: !!i.closest('.cell_output'),
                          widget: !!i.closest('.jupyter-widgets'),
                          visible: i.getClientRects().length > 0})),
  math: document.querySelectorAll('.math').length,
  typeset: document.querySelectorAll('mjx-container').length,
  views: views,
  rendered: document.querySelectorAll('.jupyter-widgets').length,
  widgetErrors: Array.from(document.querySelectorAll('.jupyter-widgets, .cell_output'))
      .map(e => e.textContent).filter(t => t.includes('Error displaying widget')).length,
  external: performance.getEntriesByType('resource').map(e => e.name)
      .filter(n => !n.startsWith(location.origin) && !n.startsWith('blob:')
                   && !n.startsWith('data:')),
};
""" % WIDGET_VIEW


def _load(browser, url: str, timeout: float = 30.0) -> dict:
    browser.get(url)
    deadline = time.time() + timeout
    while True:
        state = browser.execute_script(_PAGE_STATE)
        settled = (state["ready"] == "complete"
                   and all(i["complete"] for i in state["images"])
                   and (state["views"] == 0 or state["rendered"] > 0)
                   and (state["math"] == 0 or state["typeset"] > 0))
        if settled or time.time() > deadline:
            return state
        time.sleep(0.25)


def _severe_logs(browser) -> list[str]:
    bad = []
    for entry in browser.get_log("browser"):
        if entry.get("level") != "SEVERE" or entry.get("source") == "console-api":
            continue  # console.error() calls of the page itself are not load failures
        if "/favicon.ico" in entry.get("message", ""):
            continue  # Chromium asks every server for one; the book has none
        bad.append(f"{entry.get('source')}: {entry.get('message')}")
    return bad


def _page_url(server: str, page: str) -> str:
    return f"{server}/{page}.html"


@pytest.mark.browser
def test_book_builds_without_warnings(html_dir):
    for page in _toc_pages():
        assert (html_dir / f"{page}.html").is_file(), f"{page}.html was not built"
    # The widget manager is served by the book itself, not a CDN.
    assert (html_dir / "_static" / "ipywidgets" / "embed.js").stat().st_size > 100_000
    # The Colab launch button of a chapter opens its executed copy in book/chapters.
    for name in CHAPTER_NAMES:
        page = (html_dir / "book" / "chapters" / f"{name}.html").read_text()
        links = re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page)
        assert links, f"{name}: no Colab launch link"
        assert all(link.endswith(f"/book/chapters/{name}.ipynb") for link in links), links


@pytest.mark.browser
@pytest.mark.parametrize("page", _toc_pages())
def test_page_renders_in_chromium(browser, server, page):
    browser.get_log("browser")  # drop entries of earlier pages
    state = _load(browser, _page_url(server, page))
    assert state["ready"] == "complete", f"{page}: page did not finish loading"
    assert "404" not in state["title"] and state["title"], f"{page}: title {state['title']!r}"
    errors = _severe_logs(browser)
    assert not errors, f"{page}: errors in the browser:\n" + "\n".join(errors)
    assert not state["external"], f"{page}: fetched from the internet: {state['external']}"
    # Every figure must have pixels; a widget image may be empty only while it is hidden.
    broken = [i["src"] for i in state["images"] if not (i["complete"] and i["width"] > 0)
              and (i["visible"] or not i["widget"])]
    assert not broken, f"{page}: broken images {broken}"
    if state["math"]:
        assert state["typeset"], f"{page}: {state['math']} formulas but MathJax typeset none"
    if page.startswith("book/chapters/"):
        name = Path(page).stem
        shown = sum(1 for i in state["images"] if i["output"] and not i["widget"])
        expected = _expected_figures(name)
        assert shown >= expected, f"{page}: {shown} figures shown, the notebook has {expected}"
        assert state["widgetErrors"] == 0, f"{page}: a widget failed to render"
        if state["views"]:
            assert state["rendered"] > 0, (
                f"{page}: {state['views']} widget views saved but none rendered "
                "(is book/_static/ipywidgets/embed.js loading?)")


_VISIBLE_WIDGET_IMAGES = """
return Array.from(document.querySelectorAll('.jupyter-widgets img'))
  .filter(i => i.offsetParent !== null && i.naturalWidth > 0)
  .map(i => i.currentSrc || i.src);
"""


@pytest.mark.browser
def test_ablation_slider_works_without_a_kernel(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = f"book/chapters/{ABLATION}"
    state = _load(browser, _page_url(server, page))
    assert state["views"], f"{page}: no saved widget in the page"
    sliders = [s for s in browser.find_elements(
        By.CSS_SELECTOR, ".jupyter-widgets.widget-slider, .jupyter-widgets .widget-slider")
        if s.is_displayed()]
    assert sliders, f"{page}: the block-count slider is not rendered"
    handles = [h for h in browser.find_elements(By.CSS_SELECTOR, ".jupyter-widgets .noUi-handle")
               if h.is_displayed()]
    assert handles, f"{page}: the slider has no handle to move"
    before = browser.execute_script(_VISIBLE_WIDGET_IMAGES)
    assert before, f"{page}: the slider shows no image output"
    after = before
    for key in (Keys.ARROW_LEFT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT):
        handles[0].send_keys(key)
        deadline = time.time() + 5
        while time.time() < deadline:
            after = browser.execute_script(_VISIBLE_WIDGET_IMAGES)
            if after and after != before:
                break
            time.sleep(0.1)
        if after and after != before:
            break
    assert after != before, (f"{page}: moving the slider did not change the outputs shown "
                             "(link the widgets in the browser, e.g. with jslink)")
