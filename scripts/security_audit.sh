#!/usr/bin/env bash
# chipwarden security audit: ruff's security rules (S, bandit's checks) over the shipped code,
# then pip-audit over the locked dependency set (requirements/lock.txt). Prints a summary and
# exits non-zero when either finds something (or pip-audit cannot reach its database).
#
#   scripts/security_audit.sh            # from anywhere; PYTHON=... picks the interpreter
#
# Needs ruff (test extra) and pip-audit (`pip install pip-audit`); pip-audit needs network
# access to the package index's vulnerability data. docs/security.md says what is checked.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
SHIPPED=(agent providers policies scripts bench)
LOCK=requirements/lock.txt
log="$(mktemp -d)"
trap 'rm -rf "$log"' EXIT

echo "== ruff --select S ${SHIPPED[*]}"
"$PY" -m ruff check --select S --no-cache --output-format concise "${SHIPPED[@]}" \
    >"$log/ruff.txt" 2>&1
ruff_rc=$?
cat "$log/ruff.txt"

echo "== pip-audit -r $LOCK"
# --strict: a package that could not be looked up fails the audit (without it, pip-audit
# reports "No known vulnerabilities found" even when it could audit nothing).
"$PY" -m pip_audit --requirement "$LOCK" --require-hashes --disable-pip --strict \
    --progress-spinner off --desc off >"$log/audit.txt" 2>&1
audit_rc=$?
cat "$log/audit.txt"

pins=$(grep -cE '^[A-Za-z0-9_.-]+==' "$LOCK")
echo
echo "== summary ($(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
if [ "$ruff_rc" -eq 0 ]; then
    echo "ruff S:    clean"
else
    echo "ruff S:    $(grep -cE '^[^ ]+:[0-9]+:[0-9]+: ' "$log/ruff.txt") finding(s) (exit $ruff_rc)"
fi
if [ "$audit_rc" -eq 0 ]; then
    echo "pip-audit: no known vulnerabilities in $pins locked packages"
else
    found=$(grep -E 'Found [0-9]+ known vulnerabilit' "$log/audit.txt")
    skipped=$(grep -m1 -o '[^:]*could not be audited.*' "$log/audit.txt")
    if [ -n "$found" ]; then
        echo "pip-audit: $found"
    elif [ -n "$skipped" ]; then
        echo "pip-audit: NOT AUDITED (no access to the vulnerability data?):$skipped"
    else
        echo "pip-audit: failed (exit $audit_rc, see above)"
    fi
fi
[ "$ruff_rc" -eq 0 ] && [ "$audit_rc" -eq 0 ]
