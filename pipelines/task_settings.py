"""What each pipeline task gets on a Kubernetes cluster (kfp-kubernetes); kfp.local ignores it.

Names of Secrets, ConfigMaps and users come from mlops.config, which the
manifests agree with (tests/cluster checks). No credential value enters the
compiled spec: only references to the Secret.
"""

from __future__ import annotations

import re

from mlops import config

_QUANTITY_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_QUANTITY_MEM = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")


def apply_task_settings(
    task,
    *,
    role: str = "pipeline",
    reads_data: bool = False,
    cpu_request: str = "250m",
    cpu_limit: str = "1",
    memory_request: str = "512Mi",
    memory_limit: str = "2Gi",
):
    """Give one pipeline task what it needs to run on our cluster, and nothing more.

    The store credential of its role only, as env vars from that role's Secret
    (``config.ROLE_SECRET_NAMES``; a reference: no credential enters the spec);
    where the store is and which sources ingest may read, from the ConfigMap
    ``config.STORE_CONFIG_MAP_NAME``; for a task that reads the data, the optional
    Secret with a data URI that carries a credential; CPU and memory requests and
    limits; a non-root security context (the rest of "restricted" comes from the cluster's
    workflow controller settings); and an emptyDir at /tmp (HOME and TMPDIR
    point there in the images), so the root filesystem can be read-only.

    Parameters
    ----------
    task : kfp.dsl.PipelineTask
        The task returned by calling a component inside the pipeline function.
    role : str
        "pipeline" (every task but register) or "registry" (register: the only
        writer of model versions and aliases); see mlops/store/roles.py.
    reads_data : bool
        Whether the task reads the data URI (ingest).
    cpu_request, cpu_limit : str
        Kubernetes CPU quantities, e.g. "250m" or "1".
    memory_request, memory_limit : str
        Kubernetes memory quantities, e.g. "512Mi" or "2Gi".

    Returns
    -------
    kfp.dsl.PipelineTask
        The same task, for chaining.

    Examples
    --------
    >>> train = train_op(...)                            # doctest: +SKIP
    >>> apply_task_settings(train, memory_limit="4Gi")   # doctest: +SKIP
    """
    from kfp import kubernetes

    for name, value, pattern in (
        ("cpu_request", cpu_request, _QUANTITY_CPU),
        ("cpu_limit", cpu_limit, _QUANTITY_CPU),
        ("memory_request", memory_request, _QUANTITY_MEM),
        ("memory_limit", memory_limit, _QUANTITY_MEM),
    ):
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(
                f"The '{name}' parameter of apply_task_settings must be a Kubernetes quantity string "
                f"such as {'250m' if 'cpu' in name else '512Mi'!r}. Got {value!r} instead."
            )
    task.set_cpu_request(cpu_request)
    task.set_cpu_limit(cpu_limit)
    task.set_memory_request(memory_request)
    task.set_memory_limit(memory_limit)
    if role not in config.ROLE_SECRET_NAMES:
        raise ValueError(
            f"The 'role' parameter of apply_task_settings must be 'pipeline' or 'registry'. Got {role!r} instead."
        )
    kubernetes.use_secret_as_env(
        task, secret_name=config.ROLE_SECRET_NAMES[role], secret_key_to_env=dict(config.MINIO_SECRET_KEY_TO_ENV)
    )
    if reads_data:
        from mlops.data.uris import SECRET_URI_ENV

        kubernetes.use_secret_as_env(
            task, secret_name=config.DATA_SOURCE_SECRET_NAME, secret_key_to_env={"uri": SECRET_URI_ENV}, optional=True
        )
    kubernetes.empty_dir_mount(task, volume_name="tmp", mount_path="/tmp", size_limit="2Gi")
    # From a ConfigMap, not task.set_env_variable: kfp.local applies container env
    # to local subprocesses too, and a cluster-internal endpoint would break
    # `mlops run --store s3://...` against a local MinIO.
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=config.STORE_CONFIG_MAP_NAME,
        config_map_key_to_env={key: key for key in config.STORE_CONFIG_MAP_KEYS},
    )
    # kfp-kubernetes 2.17.3 can express only these three fields of a container's security context.
    # The rest of Pod Security "restricted" (allowPrivilegeEscalation: false, capabilities drop ALL,
    # seccompProfile RuntimeDefault, a read-only root) comes from the workflow controller's
    # podSpecPatch and executor settings: manifests/base/kfp/workflow-controller-configmap.yaml.
    kubernetes.set_security_context(
        task, run_as_user=config.RUN_AS_USER, run_as_group=config.RUN_AS_GROUP, run_as_non_root=True
    )
    return task
