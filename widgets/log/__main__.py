"""``python -m widgets.log migrate [URL]``: bring the log store at URL (default: the configured
one, see ``widgets.log.urls.log_url``) to the current schema version, in place, keeping every
row, and print the version. Stores are also migrated whenever the guide opens them to write;
this is for a store read only by the dashboard (which opens SQLite read-only) after an upgrade.
"""

from __future__ import annotations

import sys

from .store import StoreUnavailable
from .urls import log_url, open_store, redact


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "migrate" or len(args) > 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url = args[1] if len(args) == 2 else log_url()
    try:
        with open_store(url) as store:
            print(f"{redact(url)}: log schema version {store.schema_version()}")
    except (StoreUnavailable, ValueError) as exc:
        print(f"cannot migrate {redact(url)}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
