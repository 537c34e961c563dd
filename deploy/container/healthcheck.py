"""Container HEALTHCHECK: exit 0 when chipwarden's /healthz answers 2xx, else 1.

Stdlib only (runs in the image's Python). URL: $CHIPWARDEN_HEALTHCHECK_URL, default
http://127.0.0.1:8080/healthz.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8080/healthz"


def main() -> int:
    """Probe the health endpoint once; print why it failed."""
    url = os.environ.get("CHIPWARDEN_HEALTHCHECK_URL", DEFAULT_URL)
    if not url.startswith(("http://", "https://")):
        print(f"unhealthy: {url!r} is not an http(s) URL", file=sys.stderr)
        return 1
    try:
        with urllib.request.urlopen(url, timeout=4) as resp:  # noqa: S310 - scheme checked
            status = int(resp.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if 200 <= status < 300:
        return 0
    print(f"unhealthy: {url} answered {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
