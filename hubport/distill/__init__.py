"""Port a module across lineages by distillation: the source host + module teaches a student module on the
target host, on unlabelled inputs (sequence-level KD, Kim & Rush 2016), through `accelerate`.

    texts, record = read_texts("data/train.jsonl")
    fresh_module(module_dir, target_host, student_dir, seed=0)          # or a mapped port as the start
    result = distill_module(source_host, module_dir, target_host, student_dir, texts,
                            DistillConfig(steps=300, template="sentiment: {text}"), data=record)
    result.to_dict()                                                      # for hubport.json
"""

from hubport.distill.config import DistillConfig, DistillResult
from hubport.distill.data import read_texts
from hubport.distill.fresh import fresh_module
from hubport.distill.kd import distill_module, kd_loss

__all__ = ["DistillConfig", "DistillResult", "distill_module", "fresh_module", "kd_loss", "read_texts"]
