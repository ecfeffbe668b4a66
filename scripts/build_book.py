#!/usr/bin/env python3
"""Build the book: execute the chapters with papermill (optional), then build the HTML.

    python scripts/build_book.py --execute           # every chapter, then HTML   (./dev.sh book)
    python scripts/build_book.py                     # HTML only, from book/chapters (./dev.sh html)
    python scripts/build_book.py --execute --only 05_residual_blocks --no-html
    python scripts/build_book.py --refresh-sources   # the library code the chapters show, live

``--execute`` reads each chapter source ``notebooks/NN_*.md`` (a MyST Markdown
notebook, jupytext front matter), runs it top to bottom with papermill at the
profile ``$CYCLEGAN_PROFILE`` (default ``book``, the published one) or
``--profile``, and writes it with its outputs and its ipywidgets state to
``book/chapters/NN_*.ipynb``, the published chapter the book renders (papermill's
injected-parameters cell is tagged ``remove-cell``, so it is not shown). A chapter
is replaced only when it executed without error; a failed execution is kept in
``_build/failed/`` for inspection. Each chapter's time is printed and written
to ``_build/chapter_times.json``.

The HTML is then built from ``book/chapters`` with ``jupyter-book build``,
warnings treated as errors, from scratch (``--all``) so that no warning can
hide in a cached page. The book is at ``_build/html/index.html``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO / "notebooks"
CHAPTERS = REPO / "book" / "chapters"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def source_notebooks(only: list[str] | None = None) -> list[Path]:
    """The chapter sources ``notebooks/NN_*.md`` in order, or the ones named by ``only``."""
    found = sorted(p for p in SOURCES.glob("[0-9][0-9]_*.md"))
    if not only:
        return found
    by_name = {p.stem: p for p in found}
    picked = []
    for name in only:
        stem = Path(name).stem
        matches = [p for s, p in by_name.items() if s == stem or s.startswith(stem + "_")
                   or s[:2] == stem]
        if len(matches) != 1:
            raise SystemExit(f"--only {name}: no single chapter matches "
                             f"(choose from {', '.join(by_name)})")
        picked.append(matches[0])
    return picked


def widget_problems(nb: dict) -> list[str]:
    """Widget views in the outputs whose model is missing from the saved widget state."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    problems = []
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []) or []:
            view = (out.get("data") or {}).get(WIDGET_VIEW)
            if view and view.get("model_id") not in state:
                problems.append(f"cell {i}: widget {view.get('model_id')} has no saved state")
    return problems


def _relative_paths(nb: dict, src: Path) -> None:
    """Papermill records absolute input/output paths; keep the published chapter machine-free."""
    meta = nb.get("metadata", {}).get("papermill", {})
    if meta.get("input_path"):
        meta["input_path"] = src.resolve().relative_to(REPO).as_posix()
    if meta.get("output_path"):
        meta["output_path"] = f"book/chapters/{src.stem}.ipynb"
    params = meta.get("parameters") or {}
    for key, value in params.items():
        if key.endswith("_dir") and isinstance(value, str):
            params[key] = _neutral_path(value)


def _neutral_path(value: str) -> str:
    """A path relative to the repository, or only its last part: never the build machine's."""
    try:
        return Path(value).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return Path(value).name


def hide_injected_parameters(nb: dict) -> None:
    """Tag papermill's injected-parameters cell ``remove-cell`` (it may hold machine paths)."""
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell["metadata"]["tags"] = [*tags, "remove-cell"]


def source_to_ipynb(src: Path, dst: Path) -> Path:
    """Convert a MyST Markdown chapter (jupytext) into an unexecuted ``.ipynb`` at ``dst``."""
    import jupytext
    import nbformat

    nb = jupytext.read(src)
    nb.metadata.pop("jupytext", None)
    nbformat.write(nb, dst)
    return dst


def execute_chapter(src: Path, parameters: dict, kernel: str | None, timeout: int | None) -> float:
    """Execute one source notebook into ``book/chapters``; returns the seconds it took."""
    import nbformat
    import papermill as pm

    CHAPTERS.mkdir(parents=True, exist_ok=True)
    name = src.stem + ".ipynb"
    dst = CHAPTERS / name
    with tempfile.TemporaryDirectory(prefix="chapter-") as tmp:
        out = Path(tmp) / name
        start = time.perf_counter()
        source = source_to_ipynb(src, Path(tmp) / f"source-{name}")
        try:
            pm.execute_notebook(
                str(source), str(out), parameters=parameters, kernel_name=kernel,
                cwd=str(src.parent), progress_bar=False, log_output=False,
                execution_timeout=timeout,
            )
        except Exception as err:  # papermill raises PapermillExecutionError with the cell
            failed = REPO / "_build" / "failed"
            failed.mkdir(parents=True, exist_ok=True)
            if out.exists():
                shutil.copy2(out, failed / name)
            print(f"FAILED {src.name} after {time.perf_counter() - start:.0f} s "
                  f"(executed copy: {failed / name})\n{err}", file=sys.stderr)
            raise SystemExit(1) from None
        seconds = time.perf_counter() - start
        nb = nbformat.read(out, as_version=4)
        problems = widget_problems(nb)
        if problems:
            raise SystemExit(f"{src.name}: " + "; ".join(problems))
        _relative_paths(nb, src)
        hide_injected_parameters(nb)
        nbformat.write(nb, out)
        shutil.move(str(out), dst)
    return seconds


def refresh_sources(nb: dict) -> list[str]:
    """Render every ``page.show_source`` output of an executed chapter again from the live
    library (the same call on the same objects, so the same output as re-executing that cell);
    returns the names whose shown source changed."""
    from cyclegan_lib import page

    changed = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "library-source" not in "".join(data.get("text/html", "")):
                continue
            plain = "".join(data["text/plain"])
            names, grep = page.shown_objects(plain)
            markup, live = page.source_output(*names, grep=grep)
            if live != plain:
                changed += names
            data["text/html"], data["text/plain"] = markup, live
    return changed


def build_html(output: Path | None = None, fresh: bool = True) -> Path:
    """``jupyter-book build`` with warnings as errors; returns the path of index.html."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(REPO),
           "--builder", "html", "-W", "-n", "--keep-going"]
    if fresh:
        cmd.append("--all")
    if output is not None:
        cmd += ["--path-output", str(output)]
    print("$ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return (output or REPO) / "_build" / "html" / "index.html"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--execute", action="store_true",
                        help="execute the chapter sources with papermill into book/chapters first")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="execute only this chapter (e.g. 05_residual_blocks or 05); repeatable")
    parser.add_argument("--profile", default=os.environ.get("CYCLEGAN_PROFILE") or "book",
                        help="profile parameter of the chapters (default: $CYCLEGAN_PROFILE or book)")
    parser.add_argument("--runs-dir", default=None,
                        help="runs_dir parameter (default: the chapters' own default, "
                             "$CYCLEGAN_RUNS or <repo>/runs)")
    parser.add_argument("--data-dir", default=None,
                        help="data_dir parameter (default: $CYCLEGAN_DATA)")
    parser.add_argument("--seed", type=int, default=None, help="seed parameter")
    parser.add_argument("--device", default=None, help="device parameter (auto, cpu, cuda)")
    parser.add_argument("--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    parser.add_argument("--cell-timeout", type=int, default=None,
                        help="seconds one cell may run (default: no limit)")
    parser.add_argument("--refresh-sources", action="store_true",
                        help="render the library code that the published chapters show again "
                             "from the live source (no execution)")
    parser.add_argument("--no-html", action="store_true", help="do not build the HTML")
    parser.add_argument("--incremental", action="store_true",
                        help="let Sphinx reuse its cache (faster; may hide warnings of unchanged pages)")
    parser.add_argument("--path-output", type=Path, default=None,
                        help="build into PATH/_build/html instead of <repo>/_build/html")
    args = parser.parse_args(argv)

    if args.only and not args.execute:
        parser.error("--only needs --execute")
    if args.execute:
        sources = source_notebooks(args.only)
        if not sources:
            raise SystemExit(f"no chapter sources found in {SOURCES}")
        parameters: dict = {"profile": args.profile}
        for key in ("runs_dir", "data_dir", "seed", "device"):
            value = getattr(args, key)
            if value is not None:
                parameters[key] = str(Path(value).resolve()) if key.endswith("_dir") else value
        print(f"executing {len(sources)} chapter(s) with parameters {parameters}", flush=True)
        times: dict[str, float] = {}
        total = time.perf_counter()
        for src in sources:
            print(f"-- {src.name} ...", flush=True)
            times[src.stem] = round(execute_chapter(src, parameters, args.kernel,
                                                    args.cell_timeout), 1)
            print(f"   {src.name}: {times[src.stem]:.1f} s -> "
                  f"book/chapters/{src.stem}.ipynb", flush=True)
        times["total"] = round(time.perf_counter() - total, 1)
        log = REPO / "_build" / "chapter_times.json"
        log.parent.mkdir(exist_ok=True)
        log.write_text(json.dumps({"profile": args.profile, "seconds": times}, indent=2) + "\n")
        width = max(len(k) for k in times)
        print("\nchapter execution times:")
        for name, seconds in times.items():
            print(f"  {name:<{width}}  {seconds:8.1f} s")

    if args.refresh_sources:
        import nbformat

        for path in sorted(CHAPTERS.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            changed = refresh_sources(nb)
            if changed:
                nbformat.write(nb, path)
                print(f"{path.name}: shows the live source of {', '.join(changed)} again")

    if not args.no_html:
        missing = [p.name for p in source_notebooks()
                   if not (CHAPTERS / f"{p.stem}.ipynb").exists()]
        if missing:
            raise SystemExit(f"no executed chapter for {', '.join(missing)} in {CHAPTERS}: "
                             "run with --execute first")
        start = time.perf_counter()
        try:
            index = build_html(args.path_output, fresh=not args.incremental)
        except subprocess.CalledProcessError as err:
            raise SystemExit(f"jupyter-book build failed (exit {err.returncode}); "
                             "warnings count as errors") from None
        print(f"\nHTML built in {time.perf_counter() - start:.0f} s: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
