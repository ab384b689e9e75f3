"""The one place that turns a stage function into a KFP component.

Every stage uses the same image policy: our prebuilt image (dependencies
already installed, so no pip at run time and nothing fetched in the cluster)
and the stage's code imported from the installed `components` package.
"""

from kfp import dsl

from components.images import BASE_IMAGE


def build(stage_function, image: str = BASE_IMAGE):
    """A KFP component from ``stage_function`` running on ``image``.

    ``install_kfp_package=False`` because the image ships the locked kfp; the
    compiled spec then has no install step that would need network access.
    """
    return dsl.component(stage_function, base_image=image, install_kfp_package=False)
