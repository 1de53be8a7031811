"""Which map tier a tensor needs (for `hubport check`), from its key and the two hosts' configs alone.

The answer assumes the hosts' coordinates are unrelated (the lineage check said a copy is wrong); with
`same_lineage=True` a tensor whose host shapes agree needs only `copy`. Each family declares its own rule
(`tier` in its hubport.families module); "none" means no tier carries the tensor faithfully.
"""

from __future__ import annotations

from hubport.families import get_family
from hubport.hosts import HostSpec
from hubport.keys import parse_key

SHAPE_FIELDS = ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "ffn")


def _same_shapes(source: HostSpec, target: HostSpec) -> bool:
    return all(getattr(source, f) == getattr(target, f) for f in SHAPE_FIELDS)


def tier_needed(plan_tensor_key: str, family_name: str, source_spec: HostSpec, target_spec: HostSpec, *,
                same_lineage: bool = False) -> str:
    """'copy' | 'embed' | 'weights' | 'probe' | 'none' for one module tensor."""
    if same_lineage and _same_shapes(source_spec, target_spec):
        return "copy"
    return get_family(family_name).tier(parse_key(plan_tensor_key), source_spec, target_spec)
