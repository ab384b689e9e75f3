"""The library of the pipeline: stage logic, data, store, reporting, runners and the CLI.

Layers (checked by import-linter, `make lint`): ``cli`` on top; ``runners`` and
``cluster`` below it; ``stages`` and ``reporting``; ``store`` and ``data``;
``config`` and ``errors`` at the bottom. Nothing here but ``runners`` and
``cluster`` imports kfp (docs/architecture.md).
"""
