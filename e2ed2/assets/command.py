"""The assets CLI: ``python -m e2ed2.assets table | check [NAME ... | --configfile FILE ...] | fetch NAME ...``."""

from __future__ import annotations

import argparse
import json
import sys

from .. import cli
from ..atomic import write_json
from . import ASSETS, AssetMissingError, fetch, get, markdown_table, resolve, sha256
from .preflight import Need, check, default_config_path, load_config, needs


def _asset_need(name: str) -> Need:
    return Need(name, get(name).purpose, lambda: resolve(name), (name,))


def _check_names(names: list[str], allow_all: bool = False) -> list[str]:
    if allow_all and names == ["all"]:
        return list(ASSETS)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise ValueError(f"unknown asset {', '.join(map(repr, unknown))}; known: {', '.join(ASSETS)}"
                         + (" (or 'all')" if allow_all else "") + " — see `python -m e2ed2.assets table`")
    return names


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    known = ", ".join(ASSETS)
    p = cli.parser("e2ed2.assets", "Pretrained assets, never downloaded silently: `table` prints the README table, "
                   "`check` says offline what a workflow config needs and whether it is present, `fetch` downloads "
                   "into the standard caches (online).")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND",
                           help="table | check | fetch (each has its own --help)")
    sub.add_parser("table", formatter_class=fmt, help="print the README table of every asset (markdown)",
                   description="Print the README table of every asset (markdown).")
    c = sub.add_parser("check", formatter_class=fmt, help="offline: which assets a config needs, present or missing; "
                       "exit 1 if a required one is missing",
                       description="Offline: report the assets a workflow config needs as REQUIRED (present or "
                       "missing, with path and how to get it; exit 1 if one is missing) and every other asset as "
                       "OPTIONAL (never affects the exit code). Without arguments: the default config.")
    c.add_argument("names", nargs="*", metavar="NAME",
                   help=f"check these assets instead of a config, all required; choices: {known}")
    c.add_argument("--configfile", nargs="+", metavar="PATH", default=None,
                   help="workflow config file(s), merged in order over workflows/config/default.yaml as "
                        "`snakemake --configfile` does; none: the default config alone")
    f = sub.add_parser("fetch", formatter_class=fmt, help="download assets into the standard caches (needs network)",
                       description="Download assets into the standard caches (needs network); already present "
                       "ones are kept.")
    f.add_argument("names", nargs="+", metavar="NAME", help=f"asset names, or 'all'; choices: {known}")
    f.add_argument("--manifest", metavar="JSON", default=None, help="write {asset: {path, sha256}} JSON here when done")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "table":
        print(markdown_table(), end="")
        return 0
    if args.cmd == "check":
        if args.names and args.configfile:
            raise ValueError("check: give asset NAMEs or --configfile, not both")
        if args.names:
            names = _check_names(args.names)
            return check([_asset_need(n) for n in names], f"assets: {', '.join(names)}")
        files = args.configfile or []
        config = load_config(files)
        where = (f"{' + '.join(files)} (over {default_config_path()})" if files
                 else f"{default_config_path()} (the default; give --configfile for another)")
        return check(needs(config), f"config: {where}")
    names = _check_names(args.names, allow_all=True)
    done = {}
    for name in names:
        try:
            path = fetch(name)
        except AssetMissingError:
            raise
        except Exception as e:  # network or hub failure: a run failure, not a bad input
            raise cli.RunFailed(f"fetch {name}: download from {get(name).source} failed ({type(e).__name__}: {e}); "
                                f"check the network, or download it by hand (python -m e2ed2.assets check {name} "
                                f"says where it goes)") from e
        done[name] = {"path": str(path), "sha256": sha256(path)}
        print(f"fetched {name}: {path}", file=sys.stderr)
    if args.manifest:
        write_json(args.manifest, done)
    print(json.dumps(done, indent=2))
    return 0
