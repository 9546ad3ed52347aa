"""CLI commands, one module per verb: ``lookalike.commands.NAME`` exports the click
command ``NAME``.

The group (lookalike/cli.py) imports a command's module only when that command runs
(or shows its help), so ``lookalike --help`` answers at once and each command loads
only the packages it uses. The listing's one-line helps are here (a test checks them
against the commands' own).
"""

COMMANDS: dict[str, str] = {  # name -> the first sentence of its help
    "index": "Index the images under PATHS (folders or files) into the library.",
    "search": "Find the library images most similar to each of IMAGES, or to --text TEXT.",
    "remove": "Take the images at PATHS out of the library, on purpose (files stay on disk).",
    "info": "Show what the library holds: images, errors, model, index, labels, size.",
    "check": "Check the catalog, the index file and vectors.f16, and find left-over files.",
    "serve": "Serve the web app and the JSON API over a library.",
    "duplicates": "Group copies of one picture (resized, recompressed, cropped, edited).",
    "clusters": "Group the images without a human label into clusters, most promising first.",
    "labels": "Human labels and boxes: import/export (CSV, COCO, YOLO), set, remove, list, next.",
    "tag": "Tag every image that has no human label, from the labelled ones.",
    "tags": "Keywords for other photo tools: XMP sidecars of labels and predicted tags.",
    "evaluate": "Which head tags this library best? Stratified K-fold CV over the human labels.",
}
