# GitOps with Flux on the kind cluster (docs/cluster.md, "GitOps with Flux").
# Included by the top-level Makefile after mk/kind.mk, mk/cluster.mk and mk/argo.mk
# (it uses their KIND, KUBECTL, KUSTOMIZE, KIND_CLUSTER, KUBE_CONTEXT, KIND_LOAD).
#
# scripts/flux/build.sh builds Flux's source-controller and kustomize-controller
# from their Go modules and their images, cached by their inputs under
# $(FLUX_CACHE_DIR); scripts/gitops/up.sh deploys them with the Git server.

FLUX_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kfp-mlops/flux
export FLUX_CACHE_DIR
GITOPS_ENV = KIND="$(KIND)" KUBECTL="$(KUBECTL)" KUSTOMIZE="$(abspath $(KUSTOMIZE))" \
  KIND_CLUSTER=$(KIND_CLUSTER) KUBE_CONTEXT=$(KUBE_CONTEXT) KIND_LOAD=$(KIND_LOAD) PYTHON=$(PYTHON)

.PHONY: flux-binaries flux-images gitops-up gitops-push gitops-status

flux-binaries: ## Build (or find cached) Flux's source-controller and kustomize-controller from their Go modules
	nice -n 10 scripts/flux/build.sh binaries

flux-images: ## Build (or find cached) the two Flux controller images on the local Debian base
	nice -n 10 scripts/flux/build.sh images

gitops-up: $(KUSTOMIZE) ## Flux + the in-cluster Git server on kind (after deploy-argo), seeded with the GitOps folder
	$(GITOPS_ENV) scripts/gitops/up.sh

gitops-push: ## Commit manifests/gitops (+ schedules) to the in-cluster repository and push it (MESSAGE="...")
	$(GITOPS_ENV) scripts/gitops/push.sh $(if $(MESSAGE),"$(MESSAGE)")

gitops-status: ## Each recent commit of the in-cluster repository, the run it started and its state
	$(PYTHON) -m mlops.cli.main gitops status --context $(KUBE_CONTEXT)
