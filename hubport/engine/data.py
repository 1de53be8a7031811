"""Classification data as T5 text-to-text: load through `datasets`, tokenize once, keep as padded arrays.

Every condition of a cell trains on the same Task, so it is built once per process and shared; batches are cut
from its arrays by index (see hubport.engine.train), which keeps the data order a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hubport.errors import ConfigError, NotFoundError

DATA_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
# Hub datasets whose second path part is a config name, not a repo name ("glue/sst2" -> ("glue", "sst2")).
MULTI_CONFIG = ("glue", "super_glue", "nyu-mll/glue")
# Text columns of well-known datasets, used when the spec keeps the default "text" and the data has none.
TEXT_FIELD_FALLBACKS = ("text", "sentence", "review", "content")


@dataclass(frozen=True)
class DataSpec:
    """Where the data is and how an example becomes a T5 input and target."""

    source: str
    train_split: str = "train"
    eval_split: str = "validation"
    template: str = "sentiment: {text}"
    label_words: tuple[str, ...] = ("negative", "positive")
    text_field: str = "text"
    label_field: str = "label"
    max_train: int | None = None
    max_eval: int | None = None
    max_length: int = 64


@dataclass(frozen=True)
class Split:
    """One tokenized split: right-padded input ids, their mask, and integer labels."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Task:
    """A tokenized task: train and eval splits plus the label strings as token ids (with </s>)."""

    spec: DataSpec
    train: Split
    eval: Split
    label_ids: np.ndarray
    label_mask: np.ndarray
    pad_id: int

    @property
    def num_labels(self) -> int:
        return int(self.label_ids.shape[0])


def load_task(spec: DataSpec, tokenizer) -> Task:
    """Load both splits of `spec` and tokenize them with the host's tokenizer."""
    if len(spec.label_words) < 2:
        raise ConfigError(f"data '{spec.source}' needs two or more label words, got {list(spec.label_words)}",
                          "list one label word per class")
    train = _tokenize(spec, tokenizer, _load_split(spec, spec.train_split), spec.max_train)
    evals = _tokenize(spec, tokenizer, _load_split(spec, spec.eval_split), spec.max_eval)
    words = [tokenizer(w)["input_ids"] for w in spec.label_words]
    label_ids, label_mask = _pad(words, tokenizer.pad_token_id)
    if len({tuple(row[m]) for row, m in zip(label_ids, label_mask.astype(bool))}) != len(spec.label_words):
        raise ConfigError(f"label words {list(spec.label_words)} tokenize to identical ids",
                          "choose label words the host's tokenizer tells apart")
    return Task(spec=spec, train=train, eval=evals, label_ids=label_ids, label_mask=label_mask,
                pad_id=int(tokenizer.pad_token_id))


def _load_split(spec: DataSpec, split: str):
    """A `datasets.Dataset` for one split of a local folder/file or a Hub dataset."""
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    path = Path(spec.source).expanduser()
    base = split.split("[", 1)[0]
    try:
        if path.is_dir():
            builder, files = _folder_files(path)
            if base not in files:
                found = ", ".join(sorted(files)) or "none"
                raise NotFoundError(f"no '{base}' split in {path} (found {found})",
                                    "name the files train.jsonl / validation.jsonl (or .csv / .parquet)")
            return datasets.load_dataset(builder, data_files={base: str(files[base])}, split=split)
        if path.suffix in DATA_SUFFIXES and path.exists():
            builder = DATA_SUFFIXES[path.suffix]
            return datasets.load_dataset(builder, data_files={base: str(path)}, split=split)
        if path.suffix in DATA_SUFFIXES or spec.source.startswith((".", "/", "~")):
            raise NotFoundError(f"data file or folder '{spec.source}' does not exist")
        name, config = hub_name(spec.source)
        return datasets.load_dataset(name, config, split=split)
    except (ValueError, ConnectionError, FileNotFoundError) as exc:
        raise NotFoundError(f"cannot load split '{split}' of '{spec.source}': {str(exc).splitlines()[0]}",
                            "check the data id, the split name and (offline) that the data is local"
                            ) from None


def _folder_files(path: Path) -> tuple[str, dict[str, Path]]:
    """Split name -> file for a folder of train.jsonl / validation.csv / ... (one format per folder)."""
    found = {f.stem: f for f in sorted(path.iterdir()) if f.suffix in DATA_SUFFIXES and f.is_file()}
    kinds = {DATA_SUFFIXES[f.suffix] for f in found.values()}
    if len(kinds) > 1:
        raise ConfigError(f"data folder {path} mixes formats ({', '.join(sorted(kinds))})",
                          "keep one format a folder")
    return (kinds.pop() if kinds else "json"), found


def hub_name(source: str) -> tuple[str, str | None]:
    """("glue", "sst2") for "glue/sst2"; ("owner/name", "cfg") for "owner/name:cfg"; else (source, None)."""
    if ":" in source:
        name, config = source.rsplit(":", 1)
        return name, config
    head, _, tail = source.rpartition("/")
    if head in MULTI_CONFIG:
        return head, tail
    return source, None


def _text_field(spec: DataSpec, columns: list[str]) -> str:
    if spec.text_field in columns:
        return spec.text_field
    if spec.text_field == "text":
        for name in TEXT_FIELD_FALLBACKS:
            if name in columns:
                return name
    raise ConfigError(f"data '{spec.source}' has no text column '{spec.text_field}' "
                      f"(columns: {', '.join(columns)})",
                      "set text_field to one of the columns")


def _tokenize(spec: DataSpec, tokenizer, dataset, limit: int | None) -> Split:
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    columns = list(dataset.column_names)
    if spec.label_field not in columns:
        raise ConfigError(f"data '{spec.source}' has no label column '{spec.label_field}' (columns: "
                          f"{', '.join(columns)})", "set label_field to one of the columns")
    texts = [spec.template.format(text=t) for t in dataset[_text_field(spec, columns)]]
    labels = np.asarray(dataset[spec.label_field], dtype=np.int64)
    bad = (labels < 0) | (labels >= len(spec.label_words))
    if bad.any():
        raise ConfigError(f"data '{spec.source}' has {int(bad.sum())} labels outside "
                          f"0..{len(spec.label_words) - 1} (e.g. {int(labels[bad][0])})",
                          "use a split with gold labels (GLUE test has none)")
    if not texts:
        raise ConfigError(f"data '{spec.source}' has an empty split",
                          "check the split name and max_train/max_eval")
    encoded = tokenizer(texts, truncation=True, max_length=spec.max_length)["input_ids"]
    ids, mask = _pad(encoded, tokenizer.pad_token_id)
    return Split(input_ids=ids, attention_mask=mask, labels=labels)


def _pad(rows: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists into an int64 matrix and its 0/1 mask."""
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask
