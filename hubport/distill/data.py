"""Unlabelled inputs for distillation: the text field of a local folder, a JSON Lines file or a Hub dataset.

Only the text column is ever taken from the loaded table (labels are dropped before any value is read), so a
dataset with shuffled or missing labels yields the same texts, the same content hash and the same module.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from hubport.engine.data import hub_name
from hubport.errors import ConfigError, NotFoundError

SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
TEXT_FIELDS = ("text", "sentence", "review", "content", "question", "input", "document")
AUTO = "auto"


def read_texts(data: str | Path, *, revision: str | None = None, text_field: str = AUTO,
               split: str = "train") -> tuple[list[str], dict]:
    """The texts of one split and a record of where they came from: {"source", "kind", "revision" (Hub) or
    None, "sha256" of the texts, "n", "text_field", "split"}. `text_field="auto"` takes the first of
    TEXT_FIELDS that the data has."""
    dataset, kind, resolved = _load(str(data), revision, split)
    column = _text_column(str(data), list(dataset.column_names), text_field)
    texts = [str(t) for t in dataset.select_columns([column])[column]]
    if not texts:
        raise ConfigError(f"data '{data}' has no rows in split '{split}'", "pass data with inputs to distill on")
    digest = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()
    record = {"source": str(data), "kind": kind, "revision": resolved, "sha256": digest, "n": len(texts),
              "text_field": column, "split": split}
    return texts, record


def _load(data: str, revision: str | None, split: str):
    """(datasets.Dataset, kind, resolved revision) for a folder, a file, or a Hub dataset id."""
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    path = Path(data).expanduser()
    try:
        if path.is_dir():
            files = {f.stem: f for f in sorted(path.iterdir()) if f.suffix in SUFFIXES and f.is_file()}
            if split not in files:
                found = ", ".join(sorted(files)) or "none"
                raise NotFoundError(f"no '{split}' split in data folder {path} (found: {found})",
                                    f"name the file {split}.jsonl (or .csv / .parquet)")
            builder = SUFFIXES[files[split].suffix]
            return datasets.load_dataset(builder, data_files={split: str(files[split])}, split=split), "folder", None
        if path.is_file():
            if path.suffix not in SUFFIXES:
                raise ConfigError(f"data file {path} is no {', '.join(SUFFIXES)} file",
                                  "pass JSON Lines, CSV or Parquet")
            return datasets.load_dataset(SUFFIXES[path.suffix], data_files={split: str(path)}, split=split), \
                "file", None
        if path.suffix in SUFFIXES or data.startswith((".", "/", "~")):
            raise NotFoundError(f"data file or folder '{data}' does not exist")
        name, config = hub_name(data)  # glue/sst2 is the glue dataset's sst2 config
        from hubport.hub import dataset_commit

        resolved = dataset_commit(name, revision) or revision   # the commit, so the record pins it
        return datasets.load_dataset(name, config, split=split, revision=resolved), "hub", resolved
    except (ValueError, ConnectionError, FileNotFoundError) as exc:
        raise NotFoundError(f"cannot load split '{split}' of data '{data}': {str(exc).splitlines()[0]}",
                            "check the data id, revision and split (offline, the data must be local)") from None


def _text_column(data: str, columns: list[str], text_field: str) -> str:
    if text_field != AUTO:
        if text_field not in columns:
            raise ConfigError(f"data '{data}' has no text field '{text_field}' (columns: {', '.join(columns)})",
                              "pass the column that holds the inputs")
        return text_field
    for name in TEXT_FIELDS:
        if name in columns:
            return name
    raise ConfigError(f"data '{data}' has none of the text fields {', '.join(TEXT_FIELDS)} "
                      f"(columns: {', '.join(columns)})", "pass the column that holds the inputs as text_field")
