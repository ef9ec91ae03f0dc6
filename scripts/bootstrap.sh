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

quietly() {  # run "$@", showing what it printed only if it fails
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
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
# The HTML report's tests open it in a real headless Chromium: Debian's package, installed once.
if [[ ",$EXTRAS," == *",test,"* ]] && [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        step "installing Debian's chromium for the HTML report's tests (apt-get, once)"
        export DEBIAN_FRONTEND=noninteractive
        apt-cache show chromium >/dev/null 2>&1 || quietly apt-get update
        quietly apt-get install -y --no-install-recommends chromium
    else
        step "no /usr/bin/chromium: the HTML report's browser tests are skipped (apt-get install chromium)"
    fi
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
