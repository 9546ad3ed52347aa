"""lookalike serve: the web app on waitress (a production WSGI server)."""

from __future__ import annotations

import errno
import ipaddress
import logging

import click
from waitress import create_server

from lookalike.commands.options import library_option
from lookalike.indexer.store.faiss_loader import load_faiss
from lookalike.webapp import create_app
from lookalike.webapp.api import SEARCH_MODES

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _one_thread_per_search() -> None:
    """Requests already run in parallel on waitress's threads; FAISS's own OpenMP
    threads on top of them only fight over the cores (measured here: a 100k exact
    search took 3x longer with 2 OpenMP threads than with 1 under load)."""
    load_faiss().omp_set_num_threads(1)


@click.command()
@library_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Request threads (searches run in parallel; the model is shared).",
)
@click.option(
    "--max-upload-mb",
    default=32,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest upload accepted; larger requests get 413.",
)
@click.option(
    "--no-index-jobs", is_flag=True, help="Do not let the web page start indexing a folder."
)
@click.option(
    "--search-mode",
    type=click.Choice(["fast", "robust"]),
    default="fast",
    show_default=True,
    help="How an image query is searched unless the request says (API field 'mode', the "
    "search page's 'edited copies first' box). fast: one model run, vector order. "
    "robust: also a second view and geometric re-ranking, which put edited copies "
    "(crops, rotations, recolouring) first, at about 3x the CPU.",
)
def serve(library, host, port, threads, max_upload_mb, no_index_jobs, search_mode):
    """Serve the web app and the JSON API over a library.

    Listens on the loopback address by default: only this computer can reach it.
    The model and the index load once, before the first request; an indexing run
    in another terminal is picked up without a restart.
    """
    mode = SEARCH_MODES[search_mode]
    config = {
        "MAX_CONTENT_LENGTH": max_upload_mb * 1024 * 1024,
        "WARM_UP": True,
        "ALLOW_INDEX_JOBS": not no_index_jobs,
        "SEARCH_RERANK": mode["rerank"],
        "SEARCH_MULTIVIEW": mode["multiview"],
    }
    if is_loopback(host):
        config["ALLOWED_HOSTS"] = sorted({*LOOPBACK_NAMES, host.strip("[]")})
    else:
        click.echo(
            f"warning: listening on {host}: anyone who can reach this address can search "
            "and label the library",
            err=True,
        )
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("lookalike").setLevel(logging.INFO)  # the packages' own loggers
    app = create_app(library, test_config=config)
    _one_thread_per_search()
    try:
        server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            # The app answers 413 (as JSON) past MAX_CONTENT_LENGTH; waitress itself only
            # stops absurd bodies (in plain text) before buffering them.
            max_request_body_size=4 * config["MAX_CONTENT_LENGTH"],
            ident="lookalike",
        )
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise click.ClickException(
                f"port {port} on {host} is in use (another server?): pass another --port, "
                "or --port 0 for any free one"
            ) from e
        if e.errno == errno.EADDRNOTAVAIL:
            raise click.ClickException(
                f"cannot listen on {host}: not an address of this computer"
            ) from e
        raise
    name = f"[{host}]" if ":" in host else host
    click.echo(
        f"serving {app.extensions['lookalike'].root} on http://{name}:{server.effective_port}/"
    )
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()
