# The kind cluster: create, delete, and the tests that need a real cluster
# (docs/cluster.md, "Proven on a real cluster here"). Included by the top-level
# Makefile before mk/cluster.mk, so the defaults below win over its `?=` ones.
#
# cluster-up picks the way itself (scripts/kind-up.sh): kind's public node image
# plus a local registry when a registry is reachable, else a node image built
# from pinned sources (scripts/kind/build.sh, versions in scripts/kind/versions.sh),
# cached under $(KIND_CACHE_DIR) and reused by every later cluster-up.

KIND_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kfp-mlops/kind
KIND_STATE_DIR ?= $(or $(XDG_STATE_HOME),$(HOME)/.local/state)/kfp-mlops
export KIND_CACHE_DIR KIND_STATE_DIR
# kind through scripts/kind/kind: the pinned build when present, and the docker
# shim on hosts that need it; kubectl: the pinned build when present.
KIND ?= $(CURDIR)/scripts/kind/kind
KIND_TOOLS = $(shell scripts/kind/build.sh path 2>/dev/null)
KUBECTL ?= $(or $(wildcard $(KIND_TOOLS)/kubectl),kubectl)
# A cluster made without a registry gets images by `kind load` (mk/cluster.mk).
KIND_LOAD ?= $(if $(filter build,$(shell sed -n 's/^SOURCE=//p' $(KIND_STATE_DIR)/$(or $(KIND_CLUSTER),mlops).env 2>/dev/null)),kind,push)
# Images the live tests load into the cluster: MinIO (and mc), the two task images
# the stage pods run (tests/cluster_live/test_stage_pods.py), and the GitOps Git
# server (tests/cluster_live/test_gitops.py).
TEST_CLUSTER_IMAGES ?= $(MINIO_IMAGE) $(BASE_IMAGE) $(TFDV_IMAGE) $(GIT_IMAGE)

.PHONY: cluster-up cluster-down kind-node-image test-manifests test-cluster

cluster-up: ## Create the kind cluster (kind-config.yaml): public node image + registry, or built here when no registry is reachable
	scripts/kind-up.sh $(KIND_CLUSTER)

cluster-down: ## Delete the kind cluster and whatever else cluster-up made (not the cached images)
	scripts/kind-down.sh $(KIND_CLUSTER)

kind-node-image: ## Build (or find cached) the kind node image and its tools from pinned sources
	scripts/kind/build.sh node-image

test-manifests: tools ## Offline tests of the cluster path: manifests, images, task settings (tests/cluster)
	$(PYTHON) -m pytest -q tests/cluster

test-cluster: setup tools secrets ## On a real kind cluster (made and removed if not up): MinIO, roles, Pod Security, NetworkPolicy, stage pods, Argo runs, GitOps
	KIND_CLUSTER=$(KIND_CLUSTER) KUBE_CONTEXT=$(KUBE_CONTEXT) PYTHON=$(PYTHON) \
	  TEST_CLUSTER_IMAGES="$(TEST_CLUSTER_IMAGES)" scripts/kind/test-cluster.sh
