"""The training and evaluation engine: data sets, modules attached to hosts, the training loop, rank-classification
evaluation and its `evaluate` metric. `hubport port --evaluate` and the harness's runs both use it."""
