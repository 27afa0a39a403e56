"""``python -m scrollzarr COMMAND [options]``: run one of the programs by name.

Commands are the console-script names (``scroll-to-ome``, ``ppm-to-layers``,
``decompress-tiffs``, ``serve-ome``, ``make-sample``, ``validate-ome``, ``zarr-to-ome``); the underscore spellings of the
top-level scripts (``scroll_to_ome``) work too.
"""

from __future__ import annotations

import importlib
import sys

from . import __version__

#: command name -> module in scrollzarr.scripts
COMMANDS = {
    "scroll-to-ome": "scroll_to_ome",
    "ppm-to-layers": "ppm_to_layers",
    "decompress-tiffs": "decompress_tiffs",
    "serve-ome": "serve_ome",
    "make-sample": "make_sample",
    "validate-ome": "validate_ome",
    "zarr-to-ome": "zarr_to_ome",
}

USAGE = ("usage: python -m scrollzarr COMMAND [options]   (COMMAND --help for its options)\n"
         "commands: " + ", ".join(COMMANDS) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default: the command line) to the named program's ``entry``;
    return its exit code (2 for an unknown or missing command)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE) if argv else sys.stderr.write(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"scrollzarr {__version__}")
        return 0
    name = argv[0].replace("_", "-").removesuffix(".py")
    if name not in COMMANDS:
        sys.stderr.write(f"error: unknown command {argv[0]!r}\n{USAGE}")
        return 2
    module = importlib.import_module(f"scrollzarr.scripts.{COMMANDS[name]}")
    return module.entry(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
