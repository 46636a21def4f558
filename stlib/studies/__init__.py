"""Studies: the experiments the roadmap asks for, each a set of training runs and the table it yields.

Every study trains through stlib.training (fit) and records its runs like any other run; it owns
the design of the experiment (which configurations, how many seeds, what is compared), not the loop.

- bench        the speed ladder (AMP, batch, loaders, device windows, compile, ...), the accuracy guard,
               the attention A/B and the peer comparison: python -m stlib.studies.bench
- ablation     configurations x seeds -> a table of runs, resumable, in worker processes; the stage-1 items
               and stage-2 components, their summary and choice: python -m stlib.studies.ablation
- experiments  named presets x seeds (notebook 01's baselines), recorded runs read back
- scale        step time and peak memory of the alternating model against the number of sensors:
               python -m stlib.studies.scale
"""
