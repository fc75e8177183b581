"""The ``beamcat`` command: demo data, catalogs and the app.

Subcommands: ``demo [DIR]``, ``catalog add|list|show``, ``serve [CATALOG]``,
``radiography RUN [--dark D --flat F] --rois FILE --out DIR``,
``replay RECORDING... [--realtime] [--mode M] [--rois FILE] [--out DIR]``,
``gainmap ENTRY... [--poni P...] [--calibrant-images I...] --out DIR``,
``convert SOURCE OUT.zarr [--catalog CAT --name NAME]``,
``stem4d ENTRY [--calibration AU.json] --out DIR [--convert] [--n-components N]``,
``spice FILE_OR_ENTRY... --out DIR [--windows W...] [--lock B:A[:OFFSET]] [--fuse W1,W2]``;
``beamcat COMMAND --help`` tells the options.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import yaml

from beamcat.errors import BeamcatError, OptionError

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


def parse_numbers(text: str | None, count: int, flag: str) -> tuple[float, ...] | None:
    """``"a,b,c"`` -> a tuple of `count` numbers (ints where integral); None stays None."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise OptionError(f"{flag} {text!r}: expected {count} comma-separated numbers")
    return tuple(int(v) if v.is_integer() else v for v in values)


def parse_grid(text: str | None) -> tuple[int, int] | None:
    """``"8x8"`` (rows x cols) -> ``(8, 8)``; None stays None."""
    if text is None:
        return None
    rows, sep, cols = text.lower().partition("x")
    if not (sep and rows.strip().isdigit() and cols.strip().isdigit()):
        raise OptionError(f"--grid {text!r}: expected ROWSxCOLS, e.g. 8x8")
    return int(rows), int(cols)


def parse_frames(text: str | None, flag: str) -> int | slice | None:
    """``"3"`` -> frame 3; ``"0:5"`` -> frames 0 to 4 (their mean); None stays None."""
    if text is None:
        return None
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            return int(start)
        return slice(int(start) if start else None, int(stop) if stop else None)
    except ValueError:
        raise OptionError(f"{flag} {text!r}: expected a frame index N or a range N:M") from None


def _catalog_path(arg: str | None) -> Path | None:
    return Path(arg) if arg else None


def _open(arg: str | None, trusted: bool):
    from beamcat.catalog.catalogs import open_catalog

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
        options={**_key_values(args.option, "--option"), **_geometry_options(args)},
        metadata=_key_values(args.meta, "--meta"),
        trusted=args.trust,
        replace=args.replace,
    )
    print(f"{args.name} added to {catalog}")


def _geometry_options(args) -> dict:
    """``--poni P [--poni-flip]`` and ``--calibration J`` as the reader options of those names."""
    options = {} if args.calibration is None else {"calibration": Path(args.calibration)}
    if args.poni is None:
        return {**options, "poni_flip": True} if args.poni_flip else options  # refused, named
    return {**options, "poni": Path(args.poni), "poni_flip": args.poni_flip}


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

    serve(
        _catalog_path(args.catalog),
        port=args.port,
        address=args.address,
        show=args.show,
        trusted=args.trust,
    )


def _calibration_entries(catalog, run: str, dark: str | None, flat: str | None) -> dict:
    """The dark and flat entries of `run`: as given, else guessed as the Radiography page does."""
    if dark is not None and flat is not None:
        return {"dark": dark, "flat": flat}
    from beamcat.workflows.calibration_entries import default_entries, describe

    guessed = default_entries(describe(catalog), run=run)
    chosen = {"dark": dark, "flat": flat}
    for kind, given in chosen.items():
        if given is None:
            if guessed[kind] is None:
                raise BeamcatError(
                    f"run {run!r}: no {kind} entry found in the catalog (a stack of the run's "
                    f"shape named or described '{kind}'); pass --{kind} ENTRY"
                )
            chosen[kind] = guessed[kind]
            print(f"--{kind} {guessed[kind]} (guessed from the catalog)", file=sys.stderr)
    return chosen


def _cmd_radiography(args) -> None:
    from beamcat.workflows import radiography as job

    catalog = _open(args.catalog, args.trust)
    calibration = _calibration_entries(catalog, args.run[0], args.dark, args.flat)
    written = job.run_radiography(
        catalog,
        args.run,
        dark=calibration["dark"],
        flat=calibration["flat"],
        rois=Path(args.rois),
        out=Path(args.out),
        grid=parse_grid(args.grid),
        grid_region=parse_numbers(args.grid_region, 4, "--grid-region"),
        air_roi=parse_numbers(args.air, 4, "--air"),
        beer_lambert=parse_numbers(args.beer_lambert, 2, "--beer-lambert"),
        difference=parse_frames(args.difference, "--difference"),
        reference=parse_frames(args.reference, "--reference"),
        massspec=args.massspec,
        temperature=args.temperature,
        species=args.species.split(",") if args.species else None,
        smooth=parse_numbers(args.smooth, 2, "--smooth"),
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


def _cmd_gainmap(args) -> None:
    from beamcat.workflows.gainmap import run_gainmap

    needs_catalog = args.catalog or any(
        not Path(item).exists() for item in [*args.entry, *(args.calibrant_images or [])]
    )
    polarization = None if args.polarization_factor.lower() == "none" else args.polarization_factor
    try:
        polarization = None if polarization is None else float(polarization)
    except ValueError:
        raise OptionError(
            f"--polarization-factor {args.polarization_factor!r}: expected a number or 'none'"
        ) from None
    summary = run_gainmap(
        args.entry,
        args.poni,
        out=Path(args.out),
        catalog=_open(args.catalog, args.trust) if needs_catalog else None,
        calibrant_images=args.calibrant_images,
        calibrant=args.calibrant,
        name=args.name,
        formats=args.format.split(","),
        dpi=args.dpi,
        progress=not args.no_progress,
        bins=args.bins,
        flat_range=parse_numbers(args.flat_range, 2, "--flat-range"),
        polarization_factor=polarization,
        solid_angle=not args.no_solid_angle,
        median_window=args.median_window,
        damaged_nsigma=args.damaged_nsigma,
    )
    for kind, paths in summary["files"].items():
        print(f"{kind}: {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""))
    print(
        f"{summary['valid']} of {summary['pixels']} pixels measured, {summary['damaged']} damaged; "
        f"position spread {summary['position_spread_before'] * 100:.3f} % -> "
        f"{summary['position_spread_after'] * 100:.3f} % after correction"
    )


def _cmd_convert(args) -> None:
    from beamcat.catalog.convert import convert

    chunks = _key_values(args.chunks, "--chunks")
    shards = _key_values(args.shards, "--shards")
    out = convert(
        args.source,
        Path(args.out),
        chunks=chunks or None,
        shards=shards or None,
        compressor=args.compressor,
        catalog=args.catalog,
        name=args.name,
        options=_key_values(args.option, "--option"),
        progress=not args.no_progress,
    )
    print(f"{args.source} -> {out}" + (f" ({args.name} in {args.catalog})" if args.name else ""))


def _cmd_stem4d(args) -> None:
    from beamcat.workflows.stem4d import run_stem4d

    needs_catalog = args.catalog or not Path(args.entry).exists()
    summary = run_stem4d(
        args.entry,
        out=Path(args.out),
        catalog=_open(args.catalog, args.trust) if needs_catalog else None,
        calibration=args.calibration,
        convert=args.convert,
        n_components=args.n_components,
        profile=args.profile,
        q_from=args.q_from,
        n_bins=args.bins,
        name=args.name,
        formats=args.format.split(","),
        dpi=args.dpi,
        progress=not args.no_progress,
    )
    for kind, paths in summary["files"].items():
        print(f"{kind}: {paths[0]}" + (f" (+{len(paths) - 1} more)" if len(paths) > 1 else ""))
    scan, nmf = summary["scan_shape"], summary["nmf"]
    print(
        f"{scan[0]} x {scan[1]} patterns: {summary['q_bins']} radial bins of "
        f"{summary['q_step']:.4g} {summary['q_unit']}; NMF of {nmf['n_components']} components "
        f"({nmf['profile']}) in {nmf['n_iter']} iterations"
    )


def _cmd_spice(args) -> None:
    from beamcat.workflows.spice import run_spice

    needs_catalog = args.catalog or not all(Path(s).exists() for s in args.sources)
    lines = _key_values(args.line, "--line")
    summary = run_spice(
        args.sources,
        out=Path(args.out),
        catalog=_open(args.catalog, args.trust) if needs_catalog else None,
        windows=args.windows,
        fuse=[group.split(",") for group in args.fuse],
        locks=args.lock,
        lines={name: float(value) for name, value in lines.items()},
        background=args.background,
        l3=not args.no_l3,
        formats=args.format.split(","),
        dpi=args.dpi,
        progress=not args.no_progress,
    )
    for fit in summary["fits"]:
        counts = ", ".join(f"{n} {status}" for status, n in fit["status"].items())
        print(f"{fit['source']} {' + '.join(fit['windows'])}: {', '.join(fit['lines'])}: {counts}")
    for skip in summary["skipped"]:
        print(f"{skip['source']} {skip['window']}: skipped ({skip['why']}; add one with --line)")
    print(f"summary: {summary['files']['summary'][0]}")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default when it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, [], argparse.SUPPRESS)
            and (action.option_strings or action.nargs in ("?", "*"))
        ):
            text += " (default: %(default)s)"
        return text


#: the ROI file layouts, for the help of --rois (read by `beamcat.rois.load_rois`)
ROIS_HELP = """\
ROI file (--rois), JSON, either layout:
  {"bed_top": [134, 75, 52, 30], "bed_bottom": [134, 120, 52, 30]}
  {"rois": {"bed_top": {"x": 134, "y": 75, "w": 52, "h": 30}}}
x, y: the top-left pixel (column, row); w, h: width and height in pixels.
Or CSV with the header name,x,y,w,h and one row per ROI."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="beamcat", description=__doc__.splitlines()[0], formatter_class=_HelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(parent, name: str, text: str, **kwargs) -> argparse.ArgumentParser:
        return parent.add_parser(
            name, help=text, description=text, formatter_class=_HelpFormatter, **kwargs
        )

    def job_outputs(p: argparse.ArgumentParser) -> None:
        """The figure and progress options every batch job has."""
        p.add_argument("--format", default="png", metavar="png,pdf,svg", help="figure formats")
        p.add_argument("--dpi", type=float, default=150, help="figure resolution")
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    def trust(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--trust",
            action="store_true",
            help="allow catalogs whose Intake templates run code (only for catalogs you trust)",
        )

    demo = command(sub, "demo", "write the demo data set and its catalog into a folder")
    demo.add_argument(
        "dir", nargs="?", default="beamcat-demo", help="folder to write (must not hold a demo)"
    )
    demo.set_defaults(func=_cmd_demo)

    cat = command(sub, "catalog", "build and inspect catalogs")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True)
    add = command(cat_sub, "add", "add a source to a catalog file (created if missing)")
    add.add_argument("name", help="entry name (a Python identifier, e.g. imat_run)")
    add.add_argument("source", nargs="+", help="file, folder, glob or several files")
    add.add_argument("--format", help="beamcat format, e.g. tiff, mib (sniffed when omitted)")
    add.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="K=V",
        help="reader option, repeatable; values read as YAML, e.g. scan_shape=[32,32]",
    )
    add.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="K=V",
        help="entry metadata, repeatable, e.g. run=1 or description='open beam'",
    )
    add.add_argument("--poni", metavar="PATH", help="pyFAI PONI file of the detector geometry")
    add.add_argument(
        "--poni-flip",
        action="store_true",
        help="the PONI refers to the image flipped vertically (Dioptas)",
    )
    add.add_argument(
        "--calibration",
        metavar="JSON",
        help="4D-STEM calibration (ePSIC JSON: reciprocal_space_pix, p_ellipse), e.g. from "
        "calibrate_au",
    )
    add.add_argument("--catalog", default=DEFAULT_CATALOG, help="catalog file to add to")
    add.add_argument("--replace", action="store_true", help="replace an entry of the same name")
    add.set_defaults(func=_cmd_catalog_add)
    lst = command(cat_sub, "list", "list a catalog's entries")
    lst.add_argument("file", nargs="?", help="catalog file (the demo catalog when omitted)")
    lst.set_defaults(func=_cmd_catalog_list)
    show = command(cat_sub, "show", "describe one entry and open it lazily")
    show.add_argument("name", help="entry name")
    show.add_argument("--catalog", help="catalog file (the demo catalog when omitted)")
    show.set_defaults(func=_cmd_catalog_show)
    for p in (add, lst, show):
        trust(p)

    pages = "Catalog, Radiography, Live, Diffraction, Gain map and 4D-STEM pages"
    srv = command(sub, "serve", f"serve the browser app: {pages}")
    srv.add_argument("catalog", nargs="?", help="catalog file (the demo catalog when omitted)")
    srv.add_argument("--port", type=int, default=5006, help="port to listen on; 0 picks a free one")
    srv.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (panel serve's --address); 0.0.0.0 serves other machines too",
    )
    srv.add_argument("--show", action="store_true", help="open a browser tab")
    trust(srv)
    srv.set_defaults(func=_cmd_serve)

    rad = command(
        sub,
        "radiography",
        "calibrate runs, write ROI/grid tables and figures",
        epilog=ROIS_HELP,
    )
    rad.add_argument("run", nargs="+", help="catalog entry of the run (several: one double plot)")
    rad.add_argument(
        "--dark",
        metavar="ENTRY",
        help="entry of the dark frames (guessed from the catalog when omitted: "
        "a stack named or described 'dark', of the run's shape, sharing its run or prefix)",
    )
    rad.add_argument(
        "--flat",
        metavar="ENTRY",
        help="entry of the open-beam frames (guessed as --dark is: 'flat' or 'open beam')",
    )
    rad.add_argument(
        "--rois", required=True, metavar="FILE", help="ROI set, JSON or CSV (layouts below)"
    )
    rad.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    rad.add_argument("--catalog", help="catalog file (the demo catalog when omitted)")
    rad.add_argument("--grid", metavar="ROWSxCOLS", help="grid cell means and heat maps, e.g. 8x8")
    rad.add_argument(
        "--grid-region", metavar="X,Y,W,H", help="region the grid covers (the whole image)"
    )
    rad.add_argument("--air", metavar="X,Y,W,H", help="open-beam region for drift normalisation")
    rad.add_argument(
        "--beer-lambert",
        metavar="THICKNESS_CM,SIGMA_BARN",
        help="concentration (mmol/cm3) instead of reduced transmission",
    )
    rad.add_argument(
        "--difference",
        nargs="?",
        const="0",
        metavar="N|N:M",
        help="difference images against frame N or the mean of N:M (0 when given bare)",
    )
    rad.add_argument("--reference", default="0", metavar="N|N:M", help="frame(s) to normalise to")
    rad.add_argument("--massspec", metavar="ENTRY", help="mass-spec log for the double plot")
    rad.add_argument("--temperature", metavar="ENTRY", help="temperature log for the double plot")
    rad.add_argument("--species", metavar="A,B", help="mass-spec species to plot (all)")
    rad.add_argument(
        "--smooth", metavar="WINDOW,ORDER", help="Savitzky-Golay smoothing of the plots, e.g. 21,3"
    )
    rad.add_argument(
        "--pixel-size",
        type=float,
        metavar="METRES",
        help="pixel pitch for scale bars (the run's pixel_size attribute)",
    )
    rad.add_argument("--format", default="png", metavar="png,pdf,svg", help="figure formats")
    rad.add_argument("--dpi", type=float, default=200, help="figure resolution")
    rad.add_argument(
        "--animation", choices=("gif", "mp4", "none"), default="gif", help="image-sequence movie"
    )
    rad.add_argument("--frame-step", type=int, default=1, metavar="N", help="draw every N-th frame")
    rad.add_argument("--no-progress", action="store_true", help="no progress bars")
    trust(rad)
    rad.set_defaults(func=_cmd_radiography)

    rep = command(
        sub, "replay", "play a recorded stream through the live pipeline", epilog=ROIS_HELP
    )
    rep.add_argument("recording", nargs="+", help="stream files (detector + sardana) or folder")
    rep.add_argument("--realtime", action="store_true", help="at the recorded pace")
    rep.add_argument("--speed", type=float, default=1.0, help="pace factor with --realtime")
    rep.add_argument(
        "--mode", choices=("image", "cmos", "photon"), default="image", help="processing"
    )
    rep.add_argument("--rois", metavar="FILE", help="ROI set, JSON or CSV, for step means")
    rep.add_argument("--out", metavar="DIR", help="write accumulated image, step means, photons")
    rep.add_argument("--stream", help="detector stream, when the files hold several")
    rep.add_argument("--background", type=float, default=100.0, help="dark level (ADU)")
    rep.add_argument(
        "--threshold", type=float, help="pixel threshold above background (cmos: 12, photon: 8 ADU)"
    )
    rep.add_argument("--energy-min", type=float, default=1100.0, help="photon energy cut (ADU)")
    rep.add_argument("--energy-max", type=float, help="photon pile-up flag above (ADU)")
    rep.add_argument(
        "--photon-roi", metavar="X,Y,W,H", help="photon detection region (the whole frame)"
    )
    rep.add_argument("--mask-negative", action="store_true", help="negative pixels count 0")
    rep.add_argument("--overwrite", action="store_true", help="replace results in --out")
    rep.add_argument("--no-progress", action="store_true", help="no progress lines")
    rep.set_defaults(func=_cmd_replay)

    gm = command(
        sub,
        "gainmap",
        "detector gain map from amorphous-scatterer images at several detector positions",
    )
    gm.add_argument(
        "entry", nargs="+", help="catalog entry (or file/folder) of each position, in order"
    )
    gm.add_argument(
        "--poni",
        nargs="+",
        metavar="P",
        help="PONI file of each position (default: each entry's poni= option); "
        "with --calibrant-images, the start of each refinement",
    )
    gm.add_argument(
        "--calibrant-images",
        nargs="+",
        metavar="I",
        help="calibrant image (entry or file) of each position: its geometry is refined on it",
    )
    gm.add_argument("--calibrant", default="CeO2", help="calibrant of --calibrant-images")
    gm.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    gm.add_argument("--catalog", help="catalog file (the demo catalog when omitted)")
    gm.add_argument(
        "--polarization-factor",
        default="0.99",
        metavar="F|none",
        help="pyFAI polarisation factor (0.99: horizontally polarised synchrotron beam)",
    )
    gm.add_argument(
        "--no-solid-angle", action="store_true", help="do not divide by the solid angle"
    )
    gm.add_argument(
        "--median-window",
        type=int,
        default=3,
        metavar="N",
        help="median filter width in pixels, the point-spread width (1: none)",
    )
    gm.add_argument(
        "--flat-range", metavar="LO,HI", help="flat 2θ window in degrees (found when omitted)"
    )
    gm.add_argument("--bins", type=int, help="2θ bins of the radial profiles")
    gm.add_argument(
        "--damaged-nsigma", type=float, default=4.0, help="damaged: gain above median + N sigma"
    )
    gm.add_argument("--name", default="gain_map", help="stem of the map files")
    job_outputs(gm)
    trust(gm)
    gm.set_defaults(func=_cmd_gainmap)

    conv = command(sub, "convert", "convert a source to a sharded, compressed Zarr v3 store")
    conv.add_argument("source", help="file, folder or glob, or an entry of --catalog")
    conv.add_argument("out", help="store folder to create, e.g. scan.zarr (must not exist)")
    conv.add_argument("--catalog", help="catalog of an entry SOURCE, and where --name registers")
    conv.add_argument("--name", help="register the store in --catalog under this entry name")
    conv.add_argument(
        "--compressor",
        default="blosc-zstd-bitshuffle",
        help="'none' or blosc-CNAME-SHUFFLE[-LEVEL], e.g. blosc-lz4-shuffle-3",
    )
    for flag, metavar, text in (
        ("--chunks", "DIM=N", "Zarr chunk size along a dim of the images (e.g. scan_x=8)"),
        ("--shards", "DIM=N", "Zarr shard size along a dim of the images (e.g. scan_y=8)"),
        ("--option", "K=V", "reader option of a file SOURCE (e.g. scan_shape=[256,256])"),
    ):
        text += ", repeatable"
        conv.add_argument(flag, action="append", default=[], metavar=metavar, help=text)
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv.set_defaults(func=_cmd_convert)

    st = command(
        sub,
        "stem4d",
        "4D-STEM scan: elliptical radial mean/variance profiles, NMF, figures",
    )
    st.add_argument("entry", help="catalog entry (or file/folder) of the scan")
    st.add_argument("--catalog", help="catalog file (the demo catalog when omitted)")
    st.add_argument(
        "--calibration",
        metavar="AU.json",
        help="Au calibration JSON (ePSIC's or calibrate_au's); default: the entry's calibration=",
    )
    st.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    st.add_argument(
        "--convert", action="store_true", help="first convert the scan to DIR/NAME.zarr"
    )
    st.add_argument("--n-components", type=int, default=2, metavar="N", help="NMF components")
    st.add_argument(
        "--profile", choices=("variance", "mean"), default="variance", help="profile NMF factorises"
    )
    st.add_argument(
        "--q-from",
        type=float,
        metavar="Q",
        help="NMF leaves out q below Q (1/Angstrom; default twice the bright-field disc's edge)",
    )
    st.add_argument("--bins", type=int, help="radial bins (default one per pixel)")
    st.add_argument("--name", help="stem of the output files (default the entry's name)")
    job_outputs(st)
    trust(st)
    st.set_defaults(func=_cmd_stem4d)

    sp = command(
        sub, "spice", "EUV line fitting (SPICE L2, Hinode EIS): line maps, L3 files, figures"
    )
    sp.add_argument("sources", nargs="+", metavar="FILE_OR_ENTRY", help="L2/EIS files or entries")
    sp.add_argument("--catalog", help="catalog file (the demo catalog when omitted)")
    sp.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    sp.add_argument("--windows", nargs="+", metavar="W", help="windows to fit (index or name)")
    sp.add_argument(
        "--fuse", action="append", default=[], metavar="W1,W2", help="fit windows as one (repeat)"
    )
    sp.add_argument(
        "--lock",
        action="append",
        default=[],
        metavar="B:A[:OFFSET]",
        help="centre of line B = centre of A + OFFSET (Angstrom; default rest), repeatable",
    )
    sp.add_argument(
        "--line",
        action="append",
        default=[],
        metavar="NAME=ANGSTROM",
        help="a line the catalog lacks, repeatable",
    )
    sp.add_argument(
        "--background", choices=("constant", "linear"), default="constant", help="per window"
    )
    sp.add_argument("--no-l3", action="store_true", help="no SAFFRON L3 FITS files")
    job_outputs(sp)
    trust(sp)
    sp.set_defaults(func=_cmd_spice)
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
