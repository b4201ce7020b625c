"""Command-line interface: ``cellucid-nb export|estimate|validate|serve|publish``.

Each subcommand is a thin shell over the Python API; bad input ends with a
one-line reason on stderr and a non-zero exit code (2 for usage and input
errors, 1 for an export that fails validation, 3 when the system refuses a
read or write, such as a folder without write permission or a full disk).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellucid_nb.exporter.locking import ExportBusyError

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
#: The system refused a read or write (permissions, disk full): an ``OSError``.
EXIT_FAILED = 3
#: Ctrl+C, as shells report SIGINT (128 + 2).
EXIT_CANCELLED = 130


class CliError(Exception):
    """An input problem reported as one line, without a traceback."""


def _bits(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("none", "float32", "f32", "0"):
        return None
    if value in ("8", "16"):
        return int(value)
    raise argparse.ArgumentTypeError(f"expected 8, 16 or none, got {text!r}")


def _compression(text: str) -> int | None:
    value = text.strip().lower()
    if value in ("none", "0", "off"):
        return None
    if value.isdigit() and 1 <= int(value) <= 9:
        return int(value)
    raise argparse.ArgumentTypeError(f"expected none or a gzip level 1-9, got {text!r}")


def _add_plan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("h5ad", type=Path, help="input AnnData file (.h5ad); X, obsm, obsp and layers stay in the file")
    p.add_argument(
        "--genes",
        default=None,
        help="genes to export: 'hvg' (highly variable), 'all', 'none', 'top:N' (top N by variance; "
        "'top:N:mean' by mean), a file with one id per line, or a comma-separated list; unknown ids are "
        "refused (default: the plan's choice)",
    )
    p.add_argument("--quantization", type=_bits, default="8", help="gene expression bits: 8, 16 or none (default 8)")
    p.add_argument(
        "--obs-quantization", type=_bits, default="8", help="continuous obs bits: 8, 16 or none (default 8)"
    )
    p.add_argument("--compression", type=_compression, default="6", help="gzip level 1-9 or none (default 6)")
    p.add_argument("--obs", default=None, help="comma-separated obs columns to export (default: all useful ones)")
    p.add_argument(
        "--embedding",
        action="append",
        default=None,
        help="obsm key of an embedding; repeat for several dimensions (default: UMAP)",
    )
    p.add_argument("--latent", default=None, help="obsm key of the latent space for outlier quantiles (default: PCA)")
    p.add_argument("--graph", default=None, help="obsp key of the kNN graph, or 'none' (default: connectivities)")
    p.add_argument("--source", default=None,
                   help="expression source: X, raw or layers/<name> (default: log-normalised values, scaled X last)")
    p.add_argument("--name", default=None, help="dataset name shown by viewers")
    p.add_argument("--layout", choices=("key", "index"), default="key",
                   help="payload file names: key (default, as cellucid 0.0.9) or index (as cellucid 0.9.1-0.9.2)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``cellucid-nb``.

    Returns
    -------
    argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog="cellucid-nb",
        description="Export AnnData to the Cellucid exports format, estimate, validate and serve exports.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_export = sub.add_parser("export", help="export an .h5ad file to an exports folder")
    _add_plan_options(p_export)
    p_export.add_argument("out_dir", type=Path, help="output folder")
    p_export.add_argument("--force", action="store_true", help="replace an existing export at out_dir")
    p_export.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_export.add_argument("--memory-limit", default=None, metavar="SIZE",
                          help="memory budget such as 2GB or 1.5GiB (default: half the machine's memory); larger "
                               "data go through spill files beside out_dir")
    p_export.add_argument("--scheduler", default=None, metavar="ADDRESS",
                          help="Dask scheduler address (tcp://host:8786): workers read the rows; needs "
                               "cellucid_nb[dask] and the file and out_dir on a file system every worker sees")

    p_est = sub.add_parser("estimate", help="print the expected size of an export, writing nothing")
    _add_plan_options(p_est)

    p_val = sub.add_parser("validate", help="check an exports folder against the format; exit 1 on problems")
    p_val.add_argument("directory", type=Path)

    p_serve = sub.add_parser("serve", help="serve an exports folder and its viewer over HTTP")
    p_serve.add_argument("directory", type=Path)
    p_serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p_serve.add_argument("--port", type=int, default=8765, help="port; the next free one is used if taken")
    p_serve.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p_serve.add_argument("--no-token", action="store_true",
                         help="answer requests without the random token (anyone who can reach the port can read)")
    p_serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                         help="let pages of this origin (https://example.org) read the answers (CORS); repeatable")
    p_serve.add_argument("--allow-remote", action="store_true",
                         help="needed with a --host that is not loopback (other machines can connect; token stays on)")

    p_pub = sub.add_parser("publish", help="write a static site (viewer + exports) that opens anywhere")
    p_pub.add_argument("source", type=Path, nargs="+", help="an export, an exports folder, or several exports")
    p_pub.add_argument("site_dir", type=Path, help="the site folder to write")
    p_pub.add_argument("--title", default=None, help="page title (default: the first dataset's name)")
    p_pub.add_argument("--zip", action="store_true", help="also pack the site into SITE_DIR.zip")
    p_pub.add_argument("--force", action="store_true", help="publish into an existing folder that is not a site (its files are kept)")
    p_pub.add_argument("--link", action="store_true",
                       help="hard-link the payloads instead of copying them (no extra disk; the site and the "
                            "exports then share those files, so editing one in place edits the other)")
    return parser


def _gene_choice_from_spec(spec: str) -> dict[str, Any]:
    """``--genes`` as ``ExportPlan.with_genes`` arguments: a file of ids (one a line) or ``parse_gene_spec``."""
    from cellucid_nb.adata.gene_choice import parse_gene_spec

    path = Path(spec)
    if path.is_file():
        return {"mode": "list", "ids": [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]}
    return parse_gene_spec(spec)


def _plan_from_args(adata: Any, args: argparse.Namespace) -> Any:
    """Build an ExportPlan from the AnnData's defaults and the command-line options."""
    from cellucid_nb.adata.plan import ExportPlan

    plan = ExportPlan.from_anndata(adata)
    changes: dict[str, Any] = {
        "var_quantization": args.quantization,
        "obs_continuous_quantization": args.obs_quantization,
        "compression": args.compression,
        "layout": args.layout,
    }
    if args.embedding:
        embeddings: dict[int, str] = {}
        for key in args.embedding:
            if key not in adata.obsm:
                raise CliError(f"--embedding {key!r}: not in obsm (has: {', '.join(adata.obsm.keys()) or 'nothing'})")
            n_cols = adata.obsm[key].shape[1] if adata.obsm[key].ndim == 2 else 1
            if n_cols not in (1, 2, 3):
                raise CliError(f"--embedding {key!r} has {n_cols} columns, expected 1, 2 or 3")
            embeddings[n_cols] = key
        changes["embeddings"] = embeddings
    if args.latent:
        changes["latent"] = args.latent
    if args.graph:
        changes["connectivities"] = None if args.graph.lower() == "none" else args.graph
    if args.source:
        changes["expression_source"] = args.source
    if args.obs is not None:
        changes["obs_keys"] = tuple(k for k in (s.strip() for s in args.obs.split(",")) if k)
    if args.name:
        changes["dataset_name"] = args.name
    source = changes.pop("expression_source", None)
    plan = plan.replace(**changes)
    if args.genes is not None:
        # the gene rules of gene_choice, as the wizard and ExportPlan.with_genes apply them
        try:
            choice = _gene_choice_from_spec(args.genes)
        except ValueError as exc:
            raise CliError(f"--genes: {exc}") from None
        plan = plan.with_genes(adata, source=source, **choice)
    elif source is not None:
        plan = plan.replace(expression_source=source)
    plan.check(adata)
    return plan


def _read_h5ad(path: Path) -> Any:
    if not path.is_file():
        raise CliError(f"{path}: no such file (expected an .h5ad file)")
    from cellucid_nb.adata.open_file import open_h5ad_for_export

    try:  # obsm, obsp and layers stay in the file too (a pre-0.7 file: read_h5ad(backed="r"), logged)
        return open_h5ad_for_export(path)
    except Exception as exc:  # h5py/anndata raise many types for a bad file
        raise CliError(f"{path}: cannot read as AnnData ({type(exc).__name__}: {exc})") from exc


def _cmd_estimate(args: argparse.Namespace) -> int:
    from cellucid_nb.adata.estimation import estimate, format_bytes

    adata = _read_h5ad(args.h5ad)
    plan = _plan_from_args(adata, args)
    est = estimate(adata, plan)
    rows = [(p["part"], p["name"], format_bytes(p["bytes"]), str(p["files"])) for p in est.to_dict()["parts"]]
    widths = [max(len(r[i]) for r in rows + [("part", "name", "size", "files")]) for i in range(4)]
    line = "  ".join(h.ljust(w) for h, w in zip(("part", "name", "size", "files"), widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.append("-" * len(line))
    out.append(f"total {format_bytes(est.total_bytes)} in {est.n_files} files ({format_bytes(est.disk_bytes)} on disk), "
               f"about {est.seconds:.1f} s to export")
    out += [f"warning: {w}" for w in est.warnings]
    sys.stdout.write("\n".join(out) + "\n")
    return EXIT_OK


class _ProgressBar:
    """One bar of 0-100 % for the whole export: its total never changes mid-run.

    The exporter's ``done``/``total`` counts grow while it learns the work (a
    backed matrix's load phase, then the writers), so the bar shows the overall
    fraction of :class:`~cellucid_nb.adata.progress_tracking.ProgressTracker` (the
    wizard's: monotonic, load phase included) and its smoothed time left.
    """

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        from cellucid_nb.adata.progress_tracking import ProgressTracker

        self._tracker = ProgressTracker()
        self._bar = tqdm(total=100, desc="export", file=sys.stderr, dynamic_ncols=True,
                         bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}{postfix}")

    def update(self, event: Any) -> None:
        from cellucid_nb.adata.estimation import format_bytes

        snap = self._tracker.update(event)
        self._bar.set_description(f"export: {snap.phase}", refresh=False)
        self._bar.n = round(100 * snap.fraction, 1)
        left = "" if snap.eta is None else f", about {snap.eta:.0f} s left"
        self._bar.set_postfix_str(f"{format_bytes(snap.bytes)}{left}", refresh=False)
        self._bar.refresh()

    def close(self, finished: bool) -> None:
        """Fill the bar when the export returned, or erase it when it failed (the error line follows)."""
        if finished:
            self._bar.n = 100
            self._bar.refresh()
        else:
            self._bar.leave = False
        self._bar.close()


#: Warnings already shown in this run (a library warning and the result's copy of it show once).
_SHOWN: set[str] = set()


def _in_cli_words(message: str) -> str:
    """Advice written for Python callers, in this command line's terms (``--force``, not ``force=True``)."""
    message = re.sub(r"\b(Use|use|pass|Pass) force=True\b", "Pass --force", message)
    return message.replace("force=True", "--force")


def _show_warning(message: str) -> None:
    """Print ``warning: <message>`` on stderr once per distinct message."""
    if message not in _SHOWN:
        _SHOWN.add(message)
        sys.stderr.write(f"warning: {_in_cli_words(message)}\n")


def _after_cancel(out_dir: Path, existed: bool) -> str:
    """What an interrupted export left in ``out_dir``, in the command line's words."""
    from cellucid_nb.adata.progress_tracking import cancel_outcome

    return {
        "kept": f"{out_dir} keeps what it held (an export replaces a folder only when it finishes)",
        "nothing": f"nothing was written ({out_dir} was not created)",
        "leftover": f"{out_dir} exists: delete it, or export again with --force",
    }[cancel_outcome(out_dir, existed)]


def _cmd_export(args: argparse.Namespace) -> int:
    from cellucid_nb.adata.estimation import format_bytes
    from cellucid_nb.adata.exporting import export

    adata = _read_h5ad(args.h5ad)
    plan = _plan_from_args(adata, args)
    bar = None if args.no_progress else _ProgressBar()
    progress = None if bar is None else bar.update

    client = result = None
    existed = args.out_dir.exists()
    try:
        if args.memory_limit is not None:
            from cellucid_nb.adata.budget import parse_memory_limit

            parse_memory_limit(args.memory_limit, "--memory-limit")
        if args.scheduler is not None:
            try:
                from distributed import Client
            except ImportError as err:
                raise CliError('--scheduler needs Dask: pip install "cellucid_nb[dask]"') from err
            client = Client(args.scheduler)
        result = export(adata, plan, args.out_dir, progress=progress, force=args.force,
                        memory_limit=args.memory_limit, client=client)
    except (MemoryError, OSError) as err:  # budget too small, not enough disk: said before writing
        raise CliError(str(err)) from err
    except KeyboardInterrupt:
        if bar is not None:
            bar.close(finished=False)
            bar = None
        sys.stderr.write(f"cellucid-nb export: cancelled (Ctrl+C); {_after_cancel(args.out_dir, existed)}\n")
        return EXIT_CANCELLED
    finally:
        if bar is not None:
            bar.close(finished=result is not None)
        if client is not None:
            client.close()
    sys.stdout.write(
        f"wrote {result.path}: {format_bytes(result.n_bytes)} in {result.n_files} files, {result.seconds:.1f} s\n"
    )
    for w in result.warnings:
        _show_warning(w)
    return EXIT_OK


def _format_name(directory: Path) -> str:
    """The layout ``detect_format`` finds, or why there is none."""
    from cellucid_nb.format.layouts import FormatError, detect_format

    try:
        return detect_format(directory).name
    except FileNotFoundError:
        return "none (no dataset_identity.json; an exports root is validated through datasets.json)"
    except FormatError as exc:
        return f"unknown ({exc})"


def _cmd_validate(args: argparse.Namespace) -> int:
    from cellucid_nb.format.validator import format_problems, validate_export

    if not args.directory.is_dir():
        raise CliError(f"{args.directory}: not a folder (expected an exports folder)")
    sys.stdout.write(f"{args.directory}: format {_format_name(args.directory)}\n")
    problems = validate_export(args.directory)
    if problems:
        sys.stdout.write(format_problems(problems) + "\n")
        sys.stderr.write(f"{args.directory}: {len(problems)} problem(s) found\n")
        return EXIT_INVALID
    sys.stdout.write(f"{args.directory}: valid\n")
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from cellucid_nb.server import serve

    if not args.directory.is_dir():
        raise CliError(f"{args.directory}: not a folder (expected an exports folder)")
    with warnings.catch_warnings(record=True) as caught:  # shown now, not when the server stops
        warnings.simplefilter("always")
        try:
            server_ = serve(args.directory, host=args.host, port=args.port, open_browser=not args.no_browser,
                            token=None if args.no_token else "auto", allow_origins=args.allow_origin,
                            allow_remote=args.allow_remote)
        except ValueError as exc:
            raise CliError(str(exc)) from None
    for w in caught:
        _show_warning(str(w.message))
    with server_ as server:
        sys.stdout.write(f"serving {args.directory} at {server.url} (Ctrl+C to stop)\n")
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()
    return EXIT_OK


def _cmd_publish(args: argparse.Namespace) -> int:
    from cellucid_nb.publishing import publish

    source = args.source[0] if len(args.source) == 1 else args.source
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = publish(source, args.site_dir, title=args.title, zip=args.zip, force=args.force, link=args.link)
        except (ValueError, FileNotFoundError) as exc:
            raise CliError(str(exc)) from None
    for w in caught:
        _show_warning(str(w.message))
    sys.stdout.write(result.summary() + "\n")
    return EXIT_OK


_COMMANDS = {"export": _cmd_export, "estimate": _cmd_estimate, "validate": _cmd_validate, "serve": _cmd_serve,
             "publish": _cmd_publish}


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cellucid-nb``.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Process exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    _SHOWN.clear()
    with warnings.catch_warnings(record=True) as caught:
        # Library warnings are shown once each, as plain "warning: ..." lines (never Python's
        # "file:line: UserWarning" form), after what the command printed itself.
        warnings.simplefilter("always")
        try:
            return _COMMANDS[args.command](args)
        except CliError as exc:
            sys.stderr.write(f"cellucid-nb {args.command}: {_in_cli_words(str(exc))}\n")
            return EXIT_USAGE
        except (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, NotImplementedError,
                ExportBusyError) as exc:  # busy: another export or publish holds out_dir's lock
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            sys.stderr.write(f"cellucid-nb {args.command}: {_in_cli_words(message)}\n")
            return EXIT_USAGE
        except OSError as exc:  # the system refused (permissions, disk full, read-only): its words, no traceback
            where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in str(exc) else ""
            sys.stderr.write(f"cellucid-nb {args.command}: {exc}{where}; nothing was changed in place. Check the "
                             "folder's permissions and free space, then run the command again.\n")
            return EXIT_FAILED
        finally:
            for w in caught:
                _show_warning(str(w.message))
