"""Write docs/config-reference.md from zerodrift's config models.

The page is rendered by :func:`zerodrift.config_reference.render` (built-in gates only), the
same renderer behind ``zerodrift config-reference``.

Usage::

    python docs/gen_config_reference.py           # (re)write docs/config-reference.md
    python docs/gen_config_reference.py --check   # exit 1 when the committed file is stale
    python docs/gen_config_reference.py --stdout  # print it

tests/test_onboard.py compares the committed file with :func:`render`, so it cannot go stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from zerodrift.config_reference import render

OUTPUT = Path(__file__).resolve().parent / "config-reference.md"


def main(argv: list[str]) -> int:
    """Write, check (``--check``) or print (``--stdout``) the reference; returns the exit status."""
    text = render()
    if "--stdout" in argv:
        sys.stdout.write(text)
        return 0
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            sys.stderr.write(f"{OUTPUT} is stale: run python docs/gen_config_reference.py\n")
            return 1
        return 0
    OUTPUT.write_bytes(text.encode("utf-8"))
    sys.stderr.write(f"wrote {OUTPUT}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
