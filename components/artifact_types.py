"""The pipeline's own artifact types, as TFX has them: the compiler checks that a
Schema goes where a Schema is expected, and the KFP UI shows the type.

    mlops.Schema      schema.pbtxt: the TFDV schema a run validated against
    mlops.Statistics  a directory: <split>.pb (TFDV DatasetFeatureStatisticsList), skew.json
    mlops.Anomalies   anomalies.json: the anomaly rows (empty when the data passed)
    mlops.Blessing    blessing.json: the decision, the scores it compared and why

KFP's SDK accepts only the ``system.`` and ``google.`` namespaces for artifact
types (kubeflow/pipelines#11505, open); the backend and kfp.local take any (TFX
runs its ``tfx.`` types on KFP). :func:`_allow_own_namespace` lifts that one
check for ``mlops.`` only; tests/test_layering.py fails if a kfp release changes it.
"""

from kfp import dsl
from kfp.dsl.types import type_utils

NAMESPACE = "mlops"
SCHEMA_VERSION = "0.0.1"


def _allow_own_namespace() -> None:
    checked = type_utils.validate_schema_title
    if getattr(checked, "allows_mlops", False):
        return

    def validate_schema_title(schema_title: str) -> None:
        namespace, _, name = schema_title.partition(".")
        if namespace == NAMESPACE and name and "." not in name:
            return
        checked(schema_title)

    validate_schema_title.allows_mlops = True
    type_utils.validate_schema_title = validate_schema_title


_allow_own_namespace()


class Schema(dsl.Artifact):
    """A TFDV schema (text proto) in ``schema.pbtxt`` under the artifact's path."""

    schema_title = f"{NAMESPACE}.Schema"
    schema_version = SCHEMA_VERSION


class Statistics(dsl.Artifact):
    """TFDV statistics of one or more splits, one ``<split>.pb`` each, in a directory."""

    schema_title = f"{NAMESPACE}.Statistics"
    schema_version = SCHEMA_VERSION


class Anomalies(dsl.Artifact):
    """TFDV anomalies found against a schema (``anomalies.json``; an empty list when none)."""

    schema_title = f"{NAMESPACE}.Anomalies"
    schema_version = SCHEMA_VERSION


class Blessing(dsl.Artifact):
    """The evaluate stage's decision on a model (``blessing.json``, and in metadata)."""

    schema_title = f"{NAMESPACE}.Blessing"
    schema_version = SCHEMA_VERSION
