"""The ``beamcat`` command: demo data, catalogs and the app.

Subcommands: ``demo [DIR]``, ``catalog add|list|show``, ``serve [CATALOG]``,
``radiography RUN --dark D --flat F --rois FILE --out DIR``,
``replay RECORDING... [--realtime] [--mode M] [--rois FILE] [--out DIR]``;
``beamcat COMMAND --help`` tells the options.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from beamcat.errors import BeamcatError

DEFAULT_CATALOG = "catalog.yaml"


def _key_values(pairs: list[str], flag: str) -> dict:
    """Parse ``K=V`` pairs; values are read as YAML so ``scan_shape=[32,32]`` is a list."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BeamcatError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value) if value else ""
    return out


def _catalog_path(arg: str | None) -> Path | None:
    return Path(arg) if arg else None


def _open(arg: str | None, trusted: bool):
    from beamcat.catalog.build import open_catalog

    return open_catalog(_catalog_path(arg), trusted=trusted)


def _cmd_demo(args) -> None:
    from beamcat.catalog.demo import make_demo

    catalog = make_demo(Path(args.dir))
    print(f"demo data and catalog written: {catalog}")


def _cmd_catalog_add(args) -> None:
    from beamcat.catalog.build import add_source

    catalog = Path(args.catalog)
    add_source(
        catalog,
        args.name,
        args.source if len(args.source) > 1 else args.source[0],
        format=args.format,
        options=_key_values(args.option, "--option"),
        metadata=_key_values(args.meta, "--meta"),
        trusted=args.trust,
        replace=args.replace,
    )
    print(f"{args.name} added to {catalog}")


def _cmd_catalog_list(args) -> None:
    from beamcat.catalog.build import describe_entries

    rows = describe_entries(_open(args.file, args.trust))
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        meta = ", ".join(f"{k}={v}" for k, v in r["metadata"].items())
        print(f"{r['name']:<{width}}  {r['format']:<15}  {meta}")


def _cmd_catalog_show(args) -> None:
    from beamcat.catalog.build import describe_entries

    cat = _open(args.catalog, args.trust)
    rows = {r["name"]: r for r in describe_entries(cat)}
    if args.name not in rows:
        raise BeamcatError(f"no entry {args.name!r} in the catalog; entries: {', '.join(rows)}")
    print(json.dumps(rows[args.name], indent=2, default=str))
    print(cat[args.name].read())


def _cmd_serve(args) -> None:
    from beamcat.apps.serve import serve

    serve(_catalog_path(args.catalog), port=args.port, show=args.show, trusted=args.trust)


def _cmd_radiography(args) -> None:
    from beamcat.workflows import radiography as job

    written = job.run_radiography(
        _open(args.catalog, args.trust),
        args.run,
        dark=args.dark,
        flat=args.flat,
        rois=Path(args.rois),
        out=Path(args.out),
        grid=job.parse_grid(args.grid),
        grid_region=job.parse_numbers(args.grid_region, 4, "--grid-region"),
        air_roi=job.parse_numbers(args.air, 4, "--air"),
        beer_lambert=job.parse_numbers(args.beer_lambert, 2, "--beer-lambert"),
        difference=job.parse_frames(args.difference, "--difference"),
        reference=job.parse_frames(args.reference, "--reference"),
        massspec=args.massspec,
        temperature=args.temperature,
        species=args.species.split(",") if args.species else None,
        smooth=job.parse_numbers(args.smooth, 2, "--smooth"),
        pixel_size=args.pixel_size,
        formats=args.format.split(","),
        dpi=args.dpi,
        animation=None if args.animation == "none" else args.animation,
        frame_step=args.frame_step,
        progress=not args.no_progress,
    )
    for kind, paths in written.items():
        print(f"{kind}: {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""))


def _cmd_replay(args) -> None:
    from beamcat.live.replay import run_replay
    from beamcat.workflows.radiography import parse_numbers

    summary = run_replay(
        args.recording,
        out=Path(args.out) if args.out else None,
        realtime=args.realtime,
        speed=args.speed,
        stream=args.stream,
        rois=Path(args.rois) if args.rois else None,
        overwrite=args.overwrite,
        progress=None if args.no_progress else print,
        mode=args.mode,
        background=args.background,
        threshold=args.threshold,
        energy_min=args.energy_min,
        energy_max=args.energy_max,
        photon_roi=parse_numbers(args.photon_roi, 4, "--photon-roi"),
        mask_negative=args.mask_negative,
    )
    print(f"{summary.frames} frames in {summary.seconds:.1f} s ({summary.rate:.1f} frames/s)")
    for kind, path in summary.written.items():
        print(f"{kind}: {path}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="beamcat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="write the demo data set and its catalog")
    demo.add_argument("dir", nargs="?", default="beamcat-demo")
    demo.set_defaults(func=_cmd_demo)

    cat = sub.add_parser("catalog", help="build and inspect catalogs")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True)
    add = cat_sub.add_parser("add", help="add a source to a catalog file")
    add.add_argument("name")
    add.add_argument("source", nargs="+", help="file, folder, glob or several files")
    add.add_argument("--format", help="beamcat format (sniffed when omitted)")
    add.add_argument("--option", action="append", default=[], metavar="K=V")
    add.add_argument("--meta", action="append", default=[], metavar="K=V")
    add.add_argument("--catalog", default=DEFAULT_CATALOG)
    add.add_argument(
        "--replace", action="store_true", help="replace an entry of the same name"
    )
    add.set_defaults(func=_cmd_catalog_add)
    lst = cat_sub.add_parser("list", help="list a catalog's entries (demo when no FILE)")
    lst.add_argument("file", nargs="?")
    lst.set_defaults(func=_cmd_catalog_list)
    show = cat_sub.add_parser("show", help="describe one entry and open it lazily")
    show.add_argument("name")
    show.add_argument("--catalog", help="catalog file (demo when omitted)")
    show.set_defaults(func=_cmd_catalog_show)
    for p in (add, lst, show):
        p.add_argument("--trust", action="store_true", help="allow code-running templates")

    srv = sub.add_parser("serve", help="serve the catalog browser app")
    srv.add_argument("catalog", nargs="?", help="catalog file (demo when omitted)")
    srv.add_argument("--port", type=int, default=5006)
    srv.add_argument("--show", action="store_true", help="open a browser tab")
    srv.add_argument("--trust", action="store_true", help="allow code-running templates")
    srv.set_defaults(func=_cmd_serve)

    rad = sub.add_parser("radiography", help="calibrate runs, write ROI/grid tables and figures")
    rad.add_argument("run", nargs="+", help="catalog entry of the run (several: one double plot)")
    rad.add_argument("--dark", required=True, metavar="ENTRY")
    rad.add_argument("--flat", required=True, metavar="ENTRY")
    rad.add_argument("--rois", required=True, metavar="FILE", help="ROI set, JSON or CSV")
    rad.add_argument("--out", required=True, metavar="DIR")
    rad.add_argument("--catalog", help="catalog file (demo when omitted)")
    rad.add_argument("--grid", metavar="ROWSxCOLS", help="grid heat maps, e.g. 8x8")
    rad.add_argument("--grid-region", metavar="X,Y,W,H", help="gridded region (whole image)")
    rad.add_argument("--air", metavar="X,Y,W,H", help="open-beam region for drift normalisation")
    rad.add_argument("--beer-lambert", metavar="THICKNESS_CM,SIGMA_BARN")
    rad.add_argument(
        "--difference", nargs="?", const="0", metavar="N|N:M", help="reference frame(s)"
    )
    rad.add_argument("--reference", default="0", metavar="N|N:M", help="frame(s) to normalise to")
    rad.add_argument("--massspec", metavar="ENTRY")
    rad.add_argument("--temperature", metavar="ENTRY")
    rad.add_argument("--species", metavar="A,B", help="mass-spec species to plot (all)")
    rad.add_argument("--smooth", metavar="WINDOW,ORDER", help="Savitzky-Golay for the plots")
    rad.add_argument("--pixel-size", type=float, metavar="METRES", help="for scale bars")
    rad.add_argument("--format", default="png", metavar="png,pdf,svg")
    rad.add_argument("--dpi", type=float, default=200)
    rad.add_argument("--animation", choices=("gif", "mp4", "none"), default="gif")
    rad.add_argument("--frame-step", type=int, default=1, metavar="N", help="draw every N-th frame")
    rad.add_argument("--no-progress", action="store_true")
    rad.add_argument("--trust", action="store_true", help="allow code-running templates")
    rad.set_defaults(func=_cmd_radiography)

    rep = sub.add_parser("replay", help="play a recorded stream through the live pipeline")
    rep.add_argument("recording", nargs="+", help="stream files (detector + sardana) or folder")
    rep.add_argument("--realtime", action="store_true", help="at the recorded pace")
    rep.add_argument("--speed", type=float, default=1.0, help="pace factor with --realtime")
    rep.add_argument("--mode", choices=("image", "cmos", "photon"), default="image")
    rep.add_argument("--rois", metavar="FILE", help="ROI set, JSON or CSV, for step means")
    rep.add_argument("--out", metavar="DIR", help="write accumulated image, step means, photons")
    rep.add_argument("--stream", help="detector stream, when the files hold several")
    rep.add_argument("--background", type=float, default=100.0, help="dark level (ADU)")
    rep.add_argument("--threshold", type=float, help="cmos: 12, photon: 8 ADU above background")
    rep.add_argument("--energy-min", type=float, default=1100.0, help="photon energy cut (ADU)")
    rep.add_argument("--energy-max", type=float, help="photon pile-up flag above (ADU)")
    rep.add_argument("--photon-roi", metavar="X,Y,W,H", help="photon detection region")
    rep.add_argument("--mask-negative", action="store_true", help="negative pixels count 0")
    rep.add_argument("--overwrite", action="store_true", help="replace results in --out")
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(func=_cmd_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``beamcat`` command; user errors print one clear line and exit 1."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except BeamcatError as err:
        print(f"beamcat: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
