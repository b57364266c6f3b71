"""Command line: ``dockyard serve`` with dockerd's flag names, ``dockyard version``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from dockyard import __version__
from dockyard.config import Config, Flags, load_config, parse_config_file
from dockyard.errors import DockyardError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dockyard", description="Docker Engine API on containerd")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("-H", "--host", action="append", dest="hosts", metavar="ADDRESS",
                       help="unix://PATH or tcp://HOST:PORT to listen on (repeatable)")
    serve.add_argument("--data-root", help="root of persistent state (default /var/lib/dockyard)")
    serve.add_argument("--exec-root", help="root of runtime state (default /run/dockyard)")
    serve.add_argument("--config-file", help="daemon.json with dockerd's key names")
    serve.add_argument("--containerd", metavar="ADDRESS",
                       help="use this containerd socket instead of starting one")
    serve.add_argument("-l", "--log-level", choices=["debug", "info", "warn", "error", "fatal"])
    commands.add_parser("version", help="print dockyard's version")
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    flags = Flags(
        hosts=args.hosts,
        data_root=args.data_root,
        exec_root=args.exec_root,
        log_level=args.log_level,
        containerd=args.containerd,
        config_file=args.config_file,
    )
    file_data = None
    if args.config_file:
        try:
            text = Path(args.config_file).read_text()
        except OSError as exc:
            raise DockyardError(f"unable to read configuration file: {exc}") from exc
        file_data = parse_config_file(text)
    return load_config(flags, file_data)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"dockyard {__version__}")
        return 0
    try:
        config = config_from_args(args)
    except DockyardError as exc:
        print(f"dockyard: {exc.message}", file=sys.stderr)
        return 1
    level = {"warn": "WARNING", "fatal": "CRITICAL"}.get(config.log_level, config.log_level.upper())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dockyard.daemon import serve  # deferred: imports grpc stubs

    try:
        asyncio.run(serve(config))
    except DockyardError as exc:
        print(f"dockyard: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
