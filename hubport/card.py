"""The model card of a ported module, built with huggingface_hub's ModelCard / ModelCardData.

Front matter follows the Hub's adapter conventions (library_name, base_model = the target, base_model_relation:
adapter, `base_model:adapter:<target>` tag, pipeline_tag) and carries over the source card's license, language,
datasets and pipeline_tag; `model-index` holds every evaluation (zero-shot and after further training). The body
says where the module came from, how it was trained after porting, and how to load it at a pinned revision.
"""

from __future__ import annotations

from pathlib import Path

from hubport import __version__
from hubport.formats import ModuleFiles

LIBRARY_NAME = {"peft": "peft", "adapters": "adapter-transformers"}
CARRIED = ("license", "language", "datasets", "pipeline_tag")
DEFAULT_PIPELINE = "text2text-generation"

CARD_MARK = "ported with hubport "   # in every card hubport writes: how a push tells its card from a user's README
TEMPLATE = """---
{{ card_data }}
---

# {{ repo }}

A **{{ family }}** module ({{ library }}) for `{{ target }}`, {{ mark }}{{ version }}
from `{{ source }}`{% if base %}, which was trained on `{{ base }}`{% endif %}.{% if trained %}
After porting it was trained {{ trained }} further steps on {{ trained_on }}.{% else %}
Its weights are the source's, copied to the target's slots (not trained further).{% endif %}

## Usage

```python
{{ usage }}
```

## Provenance

| | |
|---|---|
{% for key, value in provenance %}| {{ key }} | {{ value }} |
{% endfor %}
{% if results %}
## Evaluation

| data set | revision | split | metric | value |
|---|---|---|---|---|
{% for r in results %}| {{ r.dataset_name }} | {{ r.dataset_revision or "-" }} | {{ r.dataset_split or "-" }} | {{ r.metric_name or r.metric_type }} | {{ "%.4f"|format(r.metric_value) }} |
{% endfor %}{% endif %}
"""

USAGE = {
    "peft": ('from transformers import AutoModelForSeq2SeqLM\nfrom peft import PeftModel\n\n'
             'REVISION = "main"  # pin a commit of {repo} for a load that never changes\n'
             'host = AutoModelForSeq2SeqLM.from_pretrained("{target}"{target_rev})\n'
             'model = PeftModel.from_pretrained(host, "{repo}", revision=REVISION)'),
    "adapters": ('import adapters\nfrom transformers import T5ForConditionalGeneration\n\n'
                 'REVISION = "main"  # pin a commit of {repo} for a load that never changes\n'
                 'model = T5ForConditionalGeneration.from_pretrained("{target}"{target_rev})\nadapters.init(model)\n'
                 'name = model.load_adapter("{repo}", revision=REVISION, with_head=False{st})\n'
                 'model.set_active_adapters(name)'),
}


def _provenance_rows(prov: dict | None) -> list[tuple[str, str]]:
    if not prov:
        return [("hubport", __version__)]
    src, tgt = prov["source"], prov["target"]
    counts = ", ".join(f"{n} {k}" for k, n in prov["slot_map"]["counts"].items())
    dropped = ", ".join(f"`{k}`" for k in prov["dropped"][:12]) + (" ..." if len(prov["dropped"]) > 12 else "")
    rows = [
        ("source", f"`{src['ref']}`" + (f" @ `{src['commit']}`" if src.get("commit") else "")),
        ("trained on", f"`{src.get('base')}`" + (f" @ `{src['base_revision']}`" if src.get("base_revision") else "")),
        ("target", f"`{tgt['ref']}`" + (f" @ `{tgt['commit']}`" if tgt.get("commit") else "")),
        ("family / library", f"{src['family']} / {src['library']}"),
        ("map", prov.get("map", "copy")),
        ("lineage", f"{prov['lineage']['verdict']} ({prov['lineage']['level']})"
                    + (", copied with --force" if prov.get("forced") else "")),
        ("slot map", counts),
        *_distill_rows(prov.get("distill")),
        ("dropped", dropped or "none"),
    ]
    evaluation = prov.get("evaluation") or {}
    if evaluation:
        rows.append(("evaluation task", f"template `{evaluation.get('template')}`, labels "
                     + ", ".join(f"`{w}`" for w in evaluation.get("label_words", []))
                     + f", {evaluation.get('metric', 'accuracy')}, seed {evaluation.get('seed', 0)}"))
        rows.append(("evaluation data", _data_text(evaluation)))
    rows += [("command", f"`{prov['command']}`"), ("hubport", prov.get("hubport_version", __version__))]
    return rows


def _data_text(evaluation: dict) -> str:
    data = evaluation.get("data") or {"kind": "hub", "id": evaluation.get("dataset")}
    if data["kind"] == "local":
        return f"local data `{Path(data['path']).name}` (not on the Hub), sha256 `{data['sha256'][:16]}`"
    return f"`{data['id']}`" + (f" @ `{data['revision']}`" if data.get("revision") else " (revision not recorded)")


def _distill_rows(d: dict | None) -> list[tuple[str, str]]:
    """Distillation's figures for the card (from hubport.json's `distill`)."""
    if not d:
        return []
    data = d.get("data") or {}
    pin = f" @ `{data['revision']}`" if data.get("revision") else (
        f" (sha256 `{data['sha256'][:12]}`)" if data.get("sha256") else "")
    agree = lambda a, b: f"{a} -> {b}" if a is not None else "not measured"
    return [
        ("distilled", (f"{d['steps']} steps from {d.get('init', 'fresh')} on {d['inputs']} inputs of "
                       f"`{data.get('source', '?')}`{pin}, {d.get('labels', 'labels not used')}, {d['seconds']} s")),
        ("teacher agreement", agree(d.get("agreement_before"), d.get("agreement_after"))
         + f" ({d.get('held_out', 0)} held-out inputs)"),
        ("KL to the teacher", agree(d.get("kl_before"), d.get("kl_after"))),
    ]


def _eval_results(prov: dict | None, results: list[dict] | None) -> list:
    """model-index entries (the harness's, or `port --evaluate`'s) as huggingface_hub EvalResults."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    evaluation = (prov or {}).get("evaluation") or {}
    entries = []
    for item in list(evaluation.get("model_index", [])) + list(results or []):
        entries += item.get("results", [item])  # a whole model-index, or its results
    if not entries:
        return []
    _, evals = model_index_to_eval_results([{"name": "ported", "results": entries}])
    return evals


def source_card_data(provenance: dict | None, hub: object | None = None) -> dict:
    """license, language, datasets and pipeline_tag of the source module's card, where it has one."""
    from huggingface_hub import ModelCard

    src = (provenance or {}).get("source") or {}
    ref = src.get("ref")
    if not ref:
        return {}
    try:
        local = Path(ref).expanduser() / "README.md"
        if local.is_file():
            card = ModelCard.load(local)
        elif src.get("commit"):
            from huggingface_hub import HfApi

            api = hub if hub is not None else HfApi()
            card = ModelCard.load(Path(api.hf_hub_download(ref, "README.md", revision=src["commit"])))
        else:
            return {}
    except Exception:  # noqa: BLE001 - no card, an unreadable one, or an unreachable Hub: carry nothing
        return {}
    data = card.data.to_dict()
    return {k: data[k] for k in CARRIED if data.get(k)}


def build_card(module: ModuleFiles, repo: str, provenance: dict | None, results: list[dict] | None = None,
               carried: dict | None = None):
    """The ModelCard for a ported module, ready to upload as README.md. `carried`: from source_card_data."""
    from huggingface_hub import ModelCard, ModelCardData

    from hubport.families import detect_family

    carried = dict(carried or {})
    family = detect_family(module.library, module.method_config, generic_ok=True).NAME
    target_info = (provenance or {}).get("target", {})
    target = target_info.get("ref") or module.base or "unknown"
    evals = _eval_results(provenance, results)
    hub_data = {e.dataset_type for e in evals if e.dataset_type and e.dataset_type != "local"}
    datasets = sorted(set(_as_list(carried.pop("datasets", None))) | hub_data) or None
    distilled = (provenance or {}).get("distill")
    tags = ["hubport", family, *(["distilled"] if distilled else []), f"base_model:adapter:{target}"]
    data = ModelCardData(library_name=LIBRARY_NAME[module.library], base_model=target, datasets=datasets,
                         pipeline_tag=carried.pop("pipeline_tag", DEFAULT_PIPELINE),
                         tags=tags, eval_results=evals or None,
                         model_name=repo if evals else None, base_model_relation="adapter", **carried)
    st = ", use_safetensors=True" if module.kind == "safetensors" else ""
    target_rev = f', revision="{target_info["commit"]}"' if target_info.get("commit") else ""
    usage = USAGE[module.library].format(target=target, repo=repo, st=st, target_rev=target_rev)
    evaluation = (provenance or {}).get("evaluation") or {}
    return ModelCard.from_template(
        data, template_str=TEMPLATE, mark=CARD_MARK, repo=repo, family=family, library=module.library, target=target,
        version=(provenance or {}).get("hubport_version", __version__),
        source=(provenance or {}).get("source", {}).get("ref", "a local folder"),
        base=(provenance or {}).get("source", {}).get("base"), usage=usage,
        trained=evaluation.get("train_steps") or 0, trained_on=_data_text(evaluation) if evaluation else "",
        provenance=_provenance_rows(provenance), results=evals)


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])
