"""The KFP components, and nothing else: one module per component (components/<name>.py).

Each component function runs its body in ``adapter.stage(...)`` (the warm start, one
line for any failure, progress tagged with the stage), unpacks its artifacts and
parameters, makes one call into the library (mlops.stages, which imports no kfp) and
packs the outputs: NamedTuple parameters that later tasks are wired to in
pipelines/training.py (the compiler checks the wiring and the KFP UI shows them),
and artifacts with their facts in ``.metadata``. KFP embeds each function's source
in the compiled spec and runs it in the image, so every import a function needs is
inside its body. components/factory.py turns these functions into components;
components/adapter.py is the one place that maps errors, progress and the warm start.

Inside a ParallelFor, kfp.local 2.17 replaces a task's upstream *parameters* with the
loop item (artifacts and pipeline parameters arrive intact), so ``train`` reads the
target and task from the preprocessor's metadata.
"""
