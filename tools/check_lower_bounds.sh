#!/usr/bin/env bash
# Check that seglite runs on the lower bounds of its dependencies.
#
# Run by hand, not by CI: it downloads about 3 GB (an old torch with its CUDA libraries: PyPI has no
# CPU-only build of it) unless pip's cache holds them. From anywhere:
#
#     bash tools/check_lower_bounds.sh                     # fresh venv in a temporary folder
#     bash tools/check_lower_bounds.sh --venv /work/venvs/lower --keep
#     bash tools/check_lower_bounds.sh -- -x tests/test_data.py     # pytest arguments after --
#
# What it does:
#   1. reads every ``name>=version`` of setup.py (install_requires and every extra: setup.py is the
#      one source of truth) and turns it into ``name==version`` constraints; a requirement without a
#      ``>=`` lower bound is an error, so every dependency stays checked;
#   2. creates a fresh venv (``--python``, default: the oldest Python of ``python_requires`` when it
#      runs, else ``python3``) and installs seglite, built from a copy of the working tree, with all
#      its extras under those constraints: each direct dependency at exactly its lower bound, the
#      dependencies of the dependencies at whatever pip resolves for them;
#   3. checks the installed versions equal the lower bounds and that ``pip check`` is clean;
#   4. runs the fast tests, ``python -m pytest -q -m "not slow"`` over the whole tests/ folder from
#      the repository root (every test file: the bounds are about the whole package, and the suite
#      takes a few minutes).
#
# Options:
#   --python PY   interpreter for the venv
#   --venv DIR    where to create the venv (must not exist or be empty); default: a temporary folder
#   --keep        keep the temporary venv afterwards (a --venv folder is always kept)
#   -- ARGS       further arguments for pytest (e.g. ``-x``, or test files instead of tests/)
#
# Exits non-zero when the install, the version check or a test fails. On the project's 2-core
# machine a run takes 11-13 minutes: 5-6 to download and install, 5-7 for the tests.
# Environment: PIP_* variables reach pip as usual; NO_ALBUMENTATIONS_UPDATE=1 is set for the tests
# (albumentations otherwise asks PyPI for its latest version at every import).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-}"
VENV=""
KEEP=0
PYTEST_ARGS=()

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --python) PYTHON="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        *) echo "check_lower_bounds: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

start=$(date +%s)
step() { printf '\n== %s (%ds)\n' "$1" "$(( $(date +%s) - start ))"; }

# --- 1. the lower bounds, read from setup.py -------------------------------------------------------
step "lower bounds from setup.py"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/seglite-lower-bounds.XXXXXX")"
READER=python3
command -v "$READER" >/dev/null || READER=python
"$READER" - "$REPO/setup.py" "$WORK" <<'EOF'
"""Write constraints.txt (name==lower bound), extras.txt and min_python.txt from setup.py's setup() call."""
import ast
import re
import sys
from pathlib import Path

setup_py, out = Path(sys.argv[1]), Path(sys.argv[2])
call = next(
    node for node in ast.walk(ast.parse(setup_py.read_text(encoding="utf-8")))
    if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "setup"
)
arguments = {keyword.arg: keyword.value for keyword in call.keywords}
requirements = list(ast.literal_eval(arguments["install_requires"]))
extras = ast.literal_eval(arguments["extras_require"]) if "extras_require" in arguments else {}
for extra in extras.values():
    requirements += extra

bounds, unbounded = {}, []
for requirement in requirements:
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(;.*)?", requirement)
    if match is None:
        sys.exit(f"setup.py: cannot read requirement {requirement!r}")
    name, specifiers = re.sub(r"[-_.]+", "-", match[1]).lower(), match[3]
    lower = re.search(r">=\s*([0-9][^,\s]*)", specifiers)
    if lower is None:
        unbounded.append(requirement)
        continue
    if bounds.setdefault(name, lower[1]) != lower[1]:
        sys.exit(f"setup.py: {name} has two lower bounds, {bounds[name]} and {lower[1]}")
if unbounded:
    sys.exit(f"setup.py: every requirement needs a '>=' lower bound to be checked; none on {unbounded}")

(out / "constraints.txt").write_text("".join(f"{name}=={version}\n" for name, version in sorted(bounds.items())))
(out / "extras.txt").write_text(",".join(extras))
python_requires = ast.literal_eval(arguments["python_requires"]) if "python_requires" in arguments else ""
minimum = re.search(r">=\s*(\d+\.\d+)", python_requires)
(out / "min_python.txt").write_text(minimum[1] if minimum else "")
EOF
cat "$WORK/constraints.txt"
EXTRAS="$(cat "$WORK/extras.txt")"
MIN_PYTHON="$(cat "$WORK/min_python.txt")"

# --- 2. a fresh venv with seglite installed at the lower bounds -----------------------------------
if [[ -z "$PYTHON" ]]; then
    PYTHON=python3
    if [[ -n "$MIN_PYTHON" ]] && "python$MIN_PYTHON" -c "" 2>/dev/null; then
        PYTHON="python$MIN_PYTHON"
    fi
fi
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ -n "$MIN_PYTHON" && "$PY_VERSION" != "$MIN_PYTHON" ]]; then
    echo "note: testing on Python $PY_VERSION, not the oldest allowed ($MIN_PYTHON); give --python python$MIN_PYTHON to check that too"
fi

if [[ -z "$VENV" ]]; then
    VENV="$WORK/venv"
elif [[ -e "$VENV" && -n "$(ls -A "$VENV" 2>/dev/null)" ]]; then
    echo "check_lower_bounds: $VENV exists and is not empty; give a new folder (the venv must be fresh)" >&2
    rm -rf "$WORK"
    exit 2
fi
cleanup() {  # the temporary folder goes, with the venv in it unless --keep; a --venv folder stays
    if [[ $KEEP -eq 1 && "$VENV" == "$WORK/venv" ]]; then rm -rf "$WORK"/*.txt "$WORK/src"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

step "venv $VENV on $("$PYTHON" --version 2>&1)"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip

step "pip install '.[$EXTRAS]' at the lower bounds"
# built from a copy of the working tree (the files git tracks or does not ignore), so that no build/
# folder is left in the repository, nor reused from an earlier build
SRC="$WORK/src"
mkdir "$SRC"
if git -C "$REPO" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
        | tar --null --files-from=- --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$SRC"
else
    cp -R "$REPO/." "$SRC"
fi
"$VENV/bin/python" -m pip install --quiet --constraint "$WORK/constraints.txt" "$SRC${EXTRAS:+[$EXTRAS]}"

# --- 3. the installed versions are the lower bounds ------------------------------------------------
step "installed versions"
"$VENV/bin/python" - "$WORK/constraints.txt" <<'EOF'
import sys
from importlib.metadata import PackageNotFoundError, version

try:
    from packaging.version import Version
except ImportError:  # packaging is a dependency of Lightning, but pip carries it too
    from pip._vendor.packaging.version import Version

wrong = []
for line in open(sys.argv[1]):
    name, wanted = line.strip().split("==")
    try:
        found = version(name)
    except PackageNotFoundError:
        found = "missing"
    print(f"  {name:32s} {found}")
    if found == "missing" or Version(Version(found).public) != Version(wanted):  # public: 2.5.1+cpu is 2.5.1
        wrong.append(f"{name} {found} (wanted {wanted})")
if wrong:
    sys.exit("not at the lower bound: " + ", ".join(wrong))
EOF
"$VENV/bin/python" -m pip check

# --- 4. the fast tests -----------------------------------------------------------------------------
step "fast tests"
cd "$REPO"
status=0
NO_ALBUMENTATIONS_UPDATE=1 "$VENV/bin/python" -m pytest -q -m "not slow" -p no:cacheprovider ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} || status=$?
step "done, pytest exit status $status"
if [[ $KEEP -eq 1 || "$VENV" != "$WORK/venv" ]]; then echo "venv kept: $VENV"; fi
exit $status
