"""The one place the distill package reaches the training engine (host and module loading, the accelerator,
the seeded batch order), so that the engine is reached through these imports only.
Also the checks that two hosts can teach each other at all: the same tokenizer, token for token.
"""

from __future__ import annotations

import json
from pathlib import Path

from hubport.engine.modules import ModuleSpec, attach_saved, load_host, save_module, saved_module_family
from hubport.engine.train import batch_indices, make_accelerator, resolve_precision
from hubport.errors import IncompatibleError, NotFoundError

__all__ = ["ModuleSpec", "attach_saved", "batch_indices", "load_host", "load_with_module", "make_accelerator",
           "module_library", "module_spec", "require_same_start", "require_same_tokenizer", "resolve_precision", "save_module"]


def module_library(module_dir: Path) -> str:
    """'peft' or 'adapters', from the adapter_config.json each library writes (peft's carries peft_type)."""
    path = Path(module_dir) / "adapter_config.json"
    if not path.is_file():
        raise NotFoundError(f"no adapter_config.json in {module_dir}", "point at a folder a module was saved to")
    return "peft" if "peft_type" in json.loads(path.read_text()) else "adapters"


def module_spec(module_dir: Path) -> ModuleSpec:
    """The family and library of a saved module (its config stays in the folder, read by its own library)."""
    return ModuleSpec.of(saved_module_family(Path(module_dir)), module_library(module_dir))


def load_with_module(host_dir: Path, module_dir: Path):
    """Host + saved module, loaded by the module's own library; returns (model, tokenizer, spec)."""
    spec = module_spec(module_dir)
    model, tokenizer = load_host(host_dir)
    return attach_saved(model, spec, Path(module_dir)), tokenizer, spec


def require_same_tokenizer(teacher_host: Path, student_host: Path, teacher_tok, student_tok) -> None:
    """Refuse hosts whose tokenizers differ (vocabulary, or the pad / eos / decoder-start ids): the teacher's
    token distributions would mean other words on the student's side."""
    a, b = teacher_tok.get_vocab(), student_tok.get_vocab()
    if a != b:
        only = sorted(set(a) ^ set(b))
        moved = sorted(t for t in set(a) & set(b) if a[t] != b[t])
        example = (only or moved)[0]
        raise IncompatibleError(
            f"hosts {teacher_host} and {student_host} have different tokenizers ({len(a)} vs {len(b)} tokens, "
            f"{len(only)} only in one, {len(moved)} with another id, e.g. {example!r})",
            "distillation needs a target host with the source host's tokenizer", (str(example),))
    ids = lambda tok: (tok.pad_token_id, tok.eos_token_id)
    if ids(teacher_tok) != ids(student_tok):
        raise IncompatibleError(
            f"hosts {teacher_host} and {student_host} use other pad / eos ids "
            f"({ids(teacher_tok)} vs {ids(student_tok)})",
            "distillation needs a target host with the source host's tokenizer")


def require_same_start(teacher, student, teacher_host: Path, student_host: Path) -> None:
    """The decoder start token must agree too: it is the first input of every decoded sequence."""
    a, b = teacher.config.decoder_start_token_id, student.config.decoder_start_token_id
    if a != b:
        raise IncompatibleError(f"hosts {teacher_host} and {student_host} start decoding from other tokens "
                                f"({a} vs {b})", "distillation needs hosts with the same decoder start token")
