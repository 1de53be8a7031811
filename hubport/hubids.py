"""Hub ids as users write them: `owner/name`, a pin (`@rev`), a subfolder (`:sub`), and the Hub's legacy names.

The Hub moved its namespace-less T5 checkpoints under `google-t5/` and redirects the old ids; peft wrote the old
ones into adapter_config.json for years. Lineage checks compare canonical ids, so `t5-base` and
`google-t5/t5-base` are one host. A pin or subfolder is never part of an id that hubport writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hubport.errors import HubportError

LEGACY_T5 = {f"t5-{size}": f"google-t5/t5-{size}" for size in ("small", "base", "large", "3b", "11b")}
"""The Hub's legacy T5 ids and where it redirects them."""

LEGACY_T5_FACTS = {"ffn": "relu", "tied": True, "vocab_size": 32128}
"""What every legacy T5 checkpoint's config says (v1.0: ReLU FFN, tied embeddings, the 32k SentencePiece vocab)."""

_REF = re.compile(r"^(?P<repo>[^@:]+)(?:@(?P<rev>[^:@]+))?(?::(?P<sub>[^@]+))?(?:@(?P<rev2>[^:@]+))?$")


@dataclass(frozen=True)
class HubRef:
    """A repo id, the revision pinned beside it, and the subfolder of the repo that holds the module."""

    repo: str
    revision: str | None = None
    subfolder: str | None = None


def parse_ref(text: str, revision: str | None = None, subfolder: str | None = None) -> HubRef:
    """`owner/name[@rev][:sub]` (or `owner/name:sub@rev`); explicit --revision / --subfolder win over the text."""
    found = _REF.match(text)
    if found is None or (found["rev"] and found["rev2"]):
        raise HubportError(f"cannot read '{text}' as a Hub id", "write owner/name, owner/name@revision or "
                           "owner/name:subfolder")
    sub = subfolder or found["sub"]
    if sub is not None:
        sub = sub.strip("/") or "."
        if sub != "." and any(part in ("", ".", "..") for part in sub.split("/")):
            raise HubportError(f"subfolder '{sub}' of '{text}' is not a relative folder path",
                               "name a folder inside the repo, e.g. owner/name:adapters/sst2")
    return HubRef(found["repo"], revision or found["rev"] or found["rev2"], sub)


def canonical_id(repo: str | None) -> str | None:
    """The id the Hub serves a repo under now (`t5-base` -> `google-t5/t5-base`); other ids unchanged."""
    if repo is None:
        return None
    return LEGACY_T5.get(repo, repo)


def legacy_name(text: str | None) -> str | None:
    """The legacy T5 id a recorded base names, also as the last part of a local path (`/content/t5-base`)."""
    if not text:
        return None
    last = str(text).rstrip("/").rsplit("/", 1)[-1]
    for name in (str(text), last):
        if name in LEGACY_T5:
            return name
    return None


def same_repo(a: str | None, b: str | None) -> bool:
    """Do two ids name one Hub repo (after the legacy redirects)? Case-insensitive, as the Hub is."""
    if not a or not b:
        return False
    return canonical_id(a).lower() == canonical_id(b).lower()  # type: ignore[union-attr]


def is_local(ref: str | Path) -> bool:
    """A reference is local when it names an existing path or looks like one (./, /, ~)."""
    text = str(ref)
    return Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or text.count("/") > 1


def bare_ref(ref: str | object) -> str:
    """What hubport writes for a host: a Hub id without `@rev` or `:sub`, or a local path unchanged."""
    text = str(ref)
    return text if is_local(text) else parse_ref(text).repo
