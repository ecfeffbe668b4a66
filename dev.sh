#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv (once), then runs a task in it.
#   ./dev.sh pytest     run the test suite (what CI runs)
#   ./dev.sh book       execute every chapter (profile: $CYCLEGAN_PROFILE, default book) and build the HTML
#   ./dev.sh html       rebuild the HTML from the committed executed chapters only (fast)
#   ./dev.sh shell CMD  run any command inside the environment
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$REPO"
VENV="${CYCLEGAN_VENV:-$REPO/.venv}"
PY="${PYTHON:-python3}"

setup_env() {
  local stamp="$VENV/.installed-$(sha1sum pyproject.toml | cut -c1-12)"
  if [ ! -f "$stamp" ]; then
    echo "== setting up $VENV (torch from the package registry; a few minutes the first time)"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".[book,test]"
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
  # Data and models beside the repository, unless the caller points elsewhere.
  local shared="${CYCLEGAN_SHARED:-$REPO/../shared}"
  export CYCLEGAN_DATA="${CYCLEGAN_DATA:-$shared/data/selfie2anime}"
  export CYCLEGAN_FACES="${CYCLEGAN_FACES:-$shared/data/faces}"
  export CYCLEGAN_ANIME_CASCADE="${CYCLEGAN_ANIME_CASCADE:-$shared/models/lbpcascade_animeface.xml}"
}

task="${1:-pytest}"; shift || true
case "$task" in
  pytest)
    setup_env
    exec python -m pytest "$@" ;;
  book)
    setup_env
    exec python scripts/build_book.py --execute "$@" ;;
  html)
    setup_env
    exec python scripts/build_book.py "$@" ;;
  shell)
    setup_env
    exec "$@" ;;
  *)
    echo "usage: ./dev.sh {pytest|book|html|shell CMD...}" >&2; exit 2 ;;
esac
