"""The one place that turns a stage's task function (components/<name>.py) into a KFP component.

Every component gets the same image policy: our prebuilt image (dependencies
already installed, so no pip at run time and nothing fetched in the cluster)
with the stage's code imported from the installed `components` package.
Components are built on first use, so importing this module costs nothing.
"""

from functools import cache

from mlops import config

# Every component, in the order a training run goes, then the monitor's own.
STAGES = (
    "ingest",
    "split",
    "validate",
    "prepare",
    "expand_candidates",
    "train",
    "select_best",
    "evaluate",
    "register",
    "report",
    "load_baseline",
    "validate_batch",
    "decide",
    "retrain_gate",
    "record_retrain",
)
# The validate stage needs the TFDV interpreter; every other stage runs on the base image.
IMAGES = {"validate": config.TFDV_IMAGE, "validate_batch": config.TFDV_IMAGE}


@cache
def component(name: str):
    """The KFP component for ``components.<name>.<name>``, on its image."""
    import importlib

    from kfp import dsl

    if name not in STAGES:
        raise ValueError(f"no component named {name!r}; the components are {', '.join(STAGES)}")
    function = getattr(importlib.import_module(f"components.{name}"), name)
    # install_kfp_package=False: the image ships the locked kfp, so the compiled
    # spec has no install step that would need network access.
    return dsl.component(function, base_image=IMAGES.get(name, config.BASE_IMAGE), install_kfp_package=False)
