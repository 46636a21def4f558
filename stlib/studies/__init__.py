"""Studies: the experiments the roadmap asks for, each a set of training runs (through stlib.training.fit, recorded
like any run) and the table it yields; a study owns the design (configurations, seeds, comparisons), not the loop.

- bench        the speed ladder, the accuracy guard, the attention A/B, the peer comparison: python -m stlib.studies.bench
- ablation     configurations x seeds -> a table of runs (resumable, in worker processes), the stage-1 items and
               stage-2 components, their summary and choice: python -m stlib.studies.ablation
- experiments  named presets x seeds (notebook 01's baselines), recorded runs read back
- scale        step time and peak memory of the alternating model against the sensor count: python -m stlib.studies.scale
"""
