"""The model card of a ported module, built with huggingface_hub's ModelCard / ModelCardData.

Front matter follows the Hub's adapter conventions (library_name, base_model = the target, base_model_relation:
adapter, `base_model:adapter:<target>` tag) and carries `model-index` results when evaluations exist; the body
records where the module came from.
"""

from __future__ import annotations

from hubport import __version__
from hubport.formats import ModuleFiles

LIBRARY_NAME = {"peft": "peft", "adapters": "adapter-transformers"}

TEMPLATE = """---
{{ card_data }}
---

# {{ repo }}

A **{{ family }}** module ({{ library }}) for `{{ target }}`, ported by [hubport](https://pypi.org/project/hubport/)
from `{{ source }}`{% if base %}, which was trained on `{{ base }}`{% endif %}.

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

| data set | condition | metric | value |
|---|---|---|---|
{% for r in results %}| {{ r.dataset_name }} | {{ r.task_name or "" }} | {{ r.metric_name or r.metric_type }} | {{ "%.4f"|format(r.metric_value) }} |
{% endfor %}{% endif %}
"""

USAGE = {
    "peft": ('from transformers import AutoModelForSeq2SeqLM\nfrom peft import PeftModel\n\n'
             'host = AutoModelForSeq2SeqLM.from_pretrained("{target}")\n'
             'model = PeftModel.from_pretrained(host, "{repo}")'),
    "adapters": ('import adapters\nfrom transformers import T5ForConditionalGeneration\n\n'
                 'model = T5ForConditionalGeneration.from_pretrained("{target}")\nadapters.init(model)\n'
                 'name = model.load_adapter("{repo}", with_head=False{st})\nmodel.set_active_adapters(name)'),
}


def _provenance_rows(prov: dict | None) -> list[tuple[str, str]]:
    if not prov:
        return [("hubport", __version__)]
    src, tgt = prov["source"], prov["target"]
    counts = ", ".join(f"{n} {k}" for k, n in prov["slot_map"]["counts"].items())
    dropped = ", ".join(f"`{k}`" for k in prov["dropped"][:12]) + (" ..." if len(prov["dropped"]) > 12 else "")
    return [
        ("source", f"`{src['ref']}`" + (f" @ `{src['commit']}`" if src.get("commit") else "")),
        ("trained on", f"`{src.get('base')}`" + (f" @ `{src['base_revision']}`" if src.get("base_revision") else "")),
        ("target", f"`{tgt['ref']}`" + (f" @ `{tgt['commit']}`" if tgt.get("commit") else "")),
        ("family / library", f"{src['family']} / {src['library']}"),
        ("map", prov.get("map", "copy")),
        ("lineage", f"{prov['lineage']['verdict']} ({prov['lineage']['level']})"
                    + (", copied with --force" if prov.get("forced") else "")),
        ("slot map", counts),
        ("dropped", dropped or "none"),
        ("command", f"`{prov['command']}`"),
        ("hubport", prov.get("hubport_version", __version__)),
    ]


def _eval_results(prov: dict | None, results: list[dict] | None) -> list:
    """model-index entries (the harness's, or `port --evaluate`'s) as huggingface_hub EvalResults."""
    from huggingface_hub.repocard_data import model_index_to_eval_results

    evaluation = (prov or {}).get("evaluation") or {}
    entries = []
    for item in list(results or []) + list(evaluation.get("model_index", [])):
        entries += item["results"] if "results" in item else [item]  # a whole model-index, or its results
    if not entries:
        return []
    _, evals = model_index_to_eval_results([{"name": "ported", "results": entries}])
    return evals


def build_card(module: ModuleFiles, repo: str, provenance: dict | None, results: list[dict] | None = None):
    """The ModelCard for a ported module, ready to upload as README.md."""
    from huggingface_hub import ModelCard, ModelCardData

    from hubport.families import detect_family

    family = detect_family(module.library, module.method_config, generic_ok=True).NAME
    target = (provenance or {}).get("target", {}).get("ref") or module.base or "unknown"
    evals = _eval_results(provenance, results)
    datasets = sorted({e.dataset_type for e in evals if e.dataset_type}) or None
    data = ModelCardData(library_name=LIBRARY_NAME[module.library], base_model=target, datasets=datasets,
                         tags=["hubport", family, f"base_model:adapter:{target}"], eval_results=evals or None,
                         model_name=repo if evals else None, base_model_relation="adapter")
    st = ", use_safetensors=True" if module.kind == "safetensors" else ""
    usage = USAGE[module.library].format(target=target, repo=repo, st=st)
    return ModelCard.from_template(
        data, template_str=TEMPLATE, repo=repo, family=family, library=module.library, target=target,
        source=(provenance or {}).get("source", {}).get("ref", "a local folder"),
        base=(provenance or {}).get("source", {}).get("base"), usage=usage,
        provenance=_provenance_rows(provenance), results=evals)
