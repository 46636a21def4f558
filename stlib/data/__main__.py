"""python -m stlib.data info NAME [--opt key=value ...] | download NAME"""

from __future__ import annotations

import argparse
import json
import sys

from ..config import ConfigError, check_applies, data_config, parse_override
from . import from_config
from .sources import download


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stlib.data", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    info = sub.add_parser("info", help="print a JSON summary of a dataset")
    info.add_argument("name", help="synthetic | pems08-tail | PEMS03/04/07/08 | METR-LA | PEMS-BAY | file")
    opt_help = "a data option, e.g. --opt num_sensors=100 --opt path=my.csv"
    info.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help=opt_help)
    dl = sub.add_parser("download", help="fetch and verify a public PeMS file into the data directory")
    dl.add_argument("name", help="PEMS04 | PEMS08")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "info":
            opts = dict(parse_override(o) for o in args.opt)
            cfg = data_config({"name": args.name, **opts}, "--opt")
            check_applies("data", args.name, opts, "--opt")
            print(json.dumps(from_config(cfg).summary(), indent=2, allow_nan=False))  # strict JSON
        else:
            print(download(args.name))
    except (ConfigError, ValueError, OSError) as e:  # OSError: missing files, failed downloads
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
