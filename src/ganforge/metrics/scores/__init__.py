"""The registered metrics, one file each; :mod:`ganforge.metrics.registry` imports every module here.

To add a metric (density/coverage, say):

1. Write ``scores/density_coverage.py`` with one class::

       @register_metric
       class DensityCoverage(FeatureSetMetric):
           name = "dc"                       # what metrics.names lists
           settings = {"dc_k": 5}            # metrics.dc_k, prefixed by the name

           def score(self, real, fake):      # all real and generated features, gathered
               return {"val/density": ..., "val/coverage": ...}

   A metric of something else than the two feature sets (IS reads logits; FID loads cached
   statistics) subclasses ``QualityMetric`` and implements ``begin``, ``update`` and ``compute``.

   Its protocol entries are its settings (override ``protocol`` if a value depends on the
   sample counts); they enter the protocol only when the metric is selected, so existing
   protocol ids do not change.
2. Add its name to ``names`` in ``conf/metrics/domain.yaml`` (and its settings there, each
   with a comment), or select it per run: ``metrics.names=[fid,dc]``.

Nothing else changes: the evaluator, the training callback and ``ganforge-eval`` find it by name.
"""
