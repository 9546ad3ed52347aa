"""The errors of cluster review (:mod:`lookalike.classifier.clustering.review`).

Each carries its data. Every one is a :class:`ReviewError`, raised before anything is
changed; the CLI prints its message on one line, the web app answers it as JSON with a
4xx status.
"""

from __future__ import annotations

from lookalike.indexer.errors import LookalikeError


class ReviewError(LookalikeError):
    """A review action that cannot be done as asked; nothing was changed."""


class NothingToCluster(ReviewError):
    def __init__(self, images: int) -> None:
        self.images = images
        super().__init__(
            "the library has no images; index a folder first (lookalike index FOLDER)"
            if images == 0
            else f"all {images} images of the library have a human label; nothing to cluster "
            "(index more images to discover new categories)"
        )


class ClusterNotFound(ReviewError):
    def __init__(self, cluster_id: int, status: str | None = None) -> None:
        self.cluster_id = cluster_id
        self.status = status
        if status == "gone":
            msg = (
                f"cluster {cluster_id} is gone: the clusters were computed again (the "
                "library or its labels changed, or another --min-size) and replaced it; "
                "run `lookalike clusters` for the current ids"
            )
        else:
            msg = f"no cluster {cluster_id}; run `lookalike clusters` to list them"
        super().__init__(msg)


class ClusterReviewed(ReviewError):
    def __init__(self, cluster_id: int, status: str, name: str | None) -> None:
        self.cluster_id = cluster_id
        self.status = status
        self.name = name
        done = f"{status} as {name!r}" if name else status
        super().__init__(f"cluster {cluster_id} was already reviewed ({done})")


class BadName(ReviewError):
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"cannot name a class {name!r}: {reason}")


class UnknownLabel(ReviewError):
    """A merge into a label the library does not have (in any case: review.same_labels)."""

    def __init__(self, label: str) -> None:
        self.label = label
        super().__init__(
            f"no label {label!r} in the library; to create it use "
            "`lookalike clusters accept ID --as NAME`"
        )


class NotAMember(ReviewError):
    def __init__(self, path: str, cluster_id: int) -> None:
        self.path = path
        self.cluster_id = cluster_id
        super().__init__(f"--exclude {path}: not a member of cluster {cluster_id}")


class CannotSplit(ReviewError):
    def __init__(self, cluster_id: int, size: int, min_size: int) -> None:
        self.cluster_id = cluster_id
        self.size = size
        self.min_size = min_size
        why = (
            f"its {size} images cannot make two groups of at least {min_size}"
            if size < 2 * min_size
            else f"its {size} images look alike (no two groups of {min_size} or more)"
        )
        super().__init__(f"cluster {cluster_id} cannot be split: {why}")
