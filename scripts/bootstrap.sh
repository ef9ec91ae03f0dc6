# Sourced by the other scripts: make .venv with Python >= 3.11 and install the project into it.
# Reinstalls only when pyproject.toml changed since the last install. Says what each step does;
# pip shows its own progress while it downloads.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
EXTRAS="${1:-postgres}"

step() {
    echo "==> $*" >&2
}

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "QuantFlow Async needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}

if [ ! -x "$VENV/bin/python" ]; then
    PYTHON_FOUND="$(find_python)"
    step "making .venv with $PYTHON_FOUND"
    "$PYTHON_FOUND" -m venv "$VENV"
    step "upgrading pip in .venv"
    "$VENV/bin/python" -m pip install --upgrade --progress-bar on --disable-pip-version-check pip
fi
STAMP="$VENV/.installed-$EXTRAS"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
    step "installing QuantFlow Async and its dependencies ($EXTRAS) into .venv; the first time takes a minute or so"
    # Without --quiet, pip prints each package as it is collected and a progress bar per download.
    "$VENV/bin/python" -m pip install --progress-bar on --disable-pip-version-check -e "$ROOT[$EXTRAS]"
    touch "$STAMP"
    step "installed; the commands are in .venv/bin (source .venv/bin/activate to use them directly)"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
