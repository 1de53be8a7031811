"""The port pipeline, one way through: resolve -> plan -> strategy -> commit.

    resolve     open the module and both hosts (configs and headers only)
    plan        what `check` reports: each tensor's fate, the lineage verdict, the tier each tensor needs
    strategies  STRATEGIES, the one registry of ways to carry a module (copy, the --map tiers, the baselines);
                each returns a Carried
    commit      the one write path: temporary folder -> weights + config -> provenance -> verify -> evaluate ->
                atomic rename, the same for every strategy

Nothing is imported here, so `hubport.port.resolve` stays a leaf that crossmap may import.
"""
