"""The publishing workflow: it builds the book with the README's command and deploys to Pages."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "book.yml"


def _readme_publish_commands() -> list[str]:
    """The commands in the code block of the README's "Publishing the book" section."""
    text = (REPO / "README.md").read_text()
    section = re.search(r"^## Publishing the book\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## Publishing the book' section"
    block = re.search(r"```bash\n(.*?)```", section.group(1), re.S)
    assert block, "the README's publishing section has no bash code block"
    return [ln.split("#")[0].strip() for ln in block.group(1).splitlines()
            if ln.split("#")[0].strip()]


def test_workflow_builds_with_the_readme_command_and_deploys_to_pages():
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "main" in triggers["push"]["branches"] and "workflow_dispatch" in triggers
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    runs = [s["run"].strip() for s in build["steps"] if "run" in s]
    uses = [s["uses"].split("@")[0] for s in build["steps"] if "uses" in s]
    commands = _readme_publish_commands()
    assert commands == ["./dev.sh html"], commands
    assert runs == commands, f"the workflow runs {runs}, the README says {commands}"
    # No training and no chapter execution in CI: only the committed chapters are rendered.
    assert not any("dev.sh book" in r or "--execute" in r for r in runs)
    assert "actions/checkout" in uses and "actions/upload-pages-artifact" in uses
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith(
        "actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_build/html"  # where scripts/build_book.py writes it
    assert "_build/html" in (REPO / "scripts" / "build_book.py").read_text()
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert [s["uses"].split("@")[0] for s in deploy["steps"]] == ["actions/deploy-pages"]


def test_dev_sh_html_is_the_html_only_build():
    """`./dev.sh html` runs build_book.py without --execute (renders, never trains)."""
    text = (REPO / "dev.sh").read_text()
    html = re.search(r"^\s*html\)\n(.*?);;", text, re.M | re.S)
    assert html and "build_book.py" in html.group(1) and "--execute" not in html.group(1)
