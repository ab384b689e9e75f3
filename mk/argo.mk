# Argo Workflows on the kind cluster, built here (docs/cluster.md, "Argo Workflows
# on kind (built here)"). Included by the top-level Makefile after mk/kind.mk and
# mk/cluster.mk (it uses their KIND, KUBECTL, KUSTOMIZE, KIND_CLUSTER, KUBE_CONTEXT,
# KIND_LOAD and MINIO_IMAGE). Targets with `## text` show in `make help`.
#
# scripts/argo/build.sh builds workflow-controller and argoexec from the Go module
# (version: scripts/kind/versions.sh) and their images on the local Debian base,
# cached by their inputs under $(ARGO_CACHE_DIR); scripts/argo/deploy.sh deploys.

ARGO_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kfp-mlops/argo
export ARGO_CACHE_DIR

.PHONY: argo-binaries argo-images argo-crds deploy-argo

argo-binaries: ## Build (or find cached) Argo Workflows' workflow-controller and argoexec from the Go module
	nice -n 10 scripts/argo/build.sh binaries

argo-images: ## Build (or find cached) the Argo controller and executor images on the local Debian base
	nice -n 10 scripts/argo/build.sh images

argo-crds: ## Print the directory of the Argo CRDs of the pinned version (copied from its Go module)
	@scripts/argo/build.sh crds

deploy-argo: $(KUSTOMIZE) secrets ## Deploy MinIO + Argo Workflows (no KFP) to the kind cluster and wait until ready
	KIND="$(KIND)" KUBECTL="$(KUBECTL)" KUSTOMIZE="$(abspath $(KUSTOMIZE))" \
	  KIND_CLUSTER=$(KIND_CLUSTER) KUBE_CONTEXT=$(KUBE_CONTEXT) KIND_LOAD=$(KIND_LOAD) \
	  MINIO_IMAGE=$(MINIO_IMAGE) PYTHON=$(PYTHON) scripts/argo/deploy.sh
