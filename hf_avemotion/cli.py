"""Command-line interface: `avemotion COMMAND ...`."""

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="avemotion", description="Audio-visual emotion recognition.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the built-in demo (synthetic benchmark)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        print("avemotion demo: not yet (lands with the training issue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
