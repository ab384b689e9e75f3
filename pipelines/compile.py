"""Compile the pipeline(s) to KFP pipeline spec YAML under pipelines/compiled/.

The compiled files are committed: they are what the KFP UI uploads, what the
cluster submitter runs and what Argo CD syncs, and a test fails when they
drift from a fresh compile.
"""

from pathlib import Path

from kfp import compiler

from pipelines.training import training_pipeline

COMPILED_DIR = Path(__file__).with_name("compiled")
PIPELINES = {"training_pipeline.yaml": training_pipeline}


def compile_all(output_dir: Path = COMPILED_DIR) -> list[Path]:
    """Write every pipeline's spec into ``output_dir``; return the paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, pipeline in PIPELINES.items():
        path = output_dir / filename
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(path))
        written.append(path)
    return written
