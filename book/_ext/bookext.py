"""Local Sphinx extension of the book.

1. A ``{colab}`` role: a link that opens a notebook of this repository in Google Colab.

``{colab}`book/chapters/01_data.ipynb``` becomes a link to
``<colab_url>/github/<owner>/<repo>/blob/<branch>/book/chapters/01_data.ipynb``, built
from ``repository.url``/``branch`` and ``launch_buttons.colab_url`` in ``_config.yml``,
so the repository URL is written in one place only.  ``{colab}`Run it <path>``` sets
the link text.

2. A fix for inline scripts registered twice: sphinx-thebe adds its configuration
   as an inline ``<script>`` (``app.add_js_file(None, body=...)``), which Sphinx 7
   stores once as filename ``None`` and again as ``''``, so every page declared
   ``const THEBE_JS_URL`` twice and the browser reported a SyntaxError.  Scripts
   that are identical up to that difference are written once.
"""
from __future__ import annotations

import re

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxRole

_EXPLICIT = re.compile(r"^(?P<text>.+?)\s*<(?P<path>[^<>]+)>$", re.S)


def colab_url(app: Sphinx, path: str) -> str:
    options = app.config.html_theme_options or {}
    repo = str(options.get("repository_url", "")).rstrip("/")
    branch = options.get("repository_branch", "main")
    colab = str(options.get("launch_buttons", {}).get("colab_url", "")).rstrip("/")
    if not repo.startswith("https://github.com/") or not colab:
        raise ValueError("the {colab} role needs repository.url (a GitHub URL) and "
                         "launch_buttons.colab_url in _config.yml")
    owner_repo = repo[len("https://github.com/"):]
    return f"{colab}/github/{owner_repo}/blob/{branch}/{path.lstrip('/')}"


class ColabRole(SphinxRole):
    def run(self):
        match = _EXPLICIT.match(self.text)
        text, path = (match["text"], match["path"]) if match else ("Open in Colab", self.text)
        try:
            url = colab_url(self.env.app, path.strip())
        except ValueError as err:
            msg = self.inliner.reporter.error(str(err), line=self.lineno)
            return [self.inliner.problematic(self.rawtext, self.rawtext, msg)], [msg]
        node = nodes.reference(self.rawtext, text, refuri=url, classes=["colab-link"])
        return [node], []


def _dedupe_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                    doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, unique = set(), []
    for js in scripts:
        attrs = getattr(js, "attributes", {})
        key = (getattr(js, "filename", js) or "", getattr(js, "priority", 0),
               tuple(sorted((k, str(v)) for k, v in attrs.items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    scripts[:] = unique  # the builder restores its own list after each page


def setup(app: Sphinx) -> dict:
    app.add_role("colab", ColabRole())
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
