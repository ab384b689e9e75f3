# The cluster path: tools, images, kind, MinIO + KFP, submission (docs/cluster.md).
# Included by the top-level Makefile. Targets with `## text` show in `make help`.
# Image names come from mlops/config.py only (read through scripts/images.py).

PYTHON ?= .venv/bin/python
GO ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
DOCKER ?= docker
KIND ?= kind
KUBECTL ?= kubectl

TOOLS_DIR := .tools
TOOLS_BIN := $(TOOLS_DIR)/bin
TOOLS_VENV := $(TOOLS_DIR)/venv
# Pinned tool versions. kustomize is built from source with the Go toolchain.
KUSTOMIZE_VERSION := v5.8.1
KUSTOMIZE := $(TOOLS_BIN)/kustomize
CHECKOV := $(TOOLS_VENV)/bin/checkov
TOOLS_PYTHON ?= python3.11

# Kubeflow Pipelines release installed by `make deploy` (also the ?ref= in
# manifests/base/kfp-upstream and kfp-cluster-scoped; tests/cluster checks).
KFP_VERSION := 2.17.0
KIND_CLUSTER ?= mlops
KUBE_CONTEXT ?= kind-$(KIND_CLUSTER)
KFP_HOST ?= http://127.0.0.1:8888
MINIO_ENV := manifests/overlays/kind/minio.env

# BASE_IMAGE, TFDV_IMAGE, MINIO_IMAGE, IMAGE_VERSION from mlops/config.py.
$(foreach line,$(shell python3 scripts/images.py),$(eval $(line)))
# The origin URL without user, password or token (a remote URL can carry one).
IMAGE_SOURCE ?= $(shell python3 scripts/build_images.py --print-source)
# push: to the kind local registry at localhost:5001 (scripts/kind-up.sh);
# kind: `kind load docker-image` instead (clusters made without the registry).
KIND_LOAD ?= push

# cluster-up, cluster-down and the cluster tests are in mk/kind.mk.
.PHONY: tools secrets kind-load deploy ui submit \
  k8s-manifests manifests-check checkov gitops-app

tools: $(KUSTOMIZE) $(CHECKOV) ## Build kustomize (Go, pinned) and install checkov (locked venv) into .tools/

# A stamp per version: bumping KUSTOMIZE_VERSION rebuilds, nothing else does.
$(KUSTOMIZE): $(TOOLS_DIR)/kustomize-$(KUSTOMIZE_VERSION).stamp
$(TOOLS_DIR)/kustomize-$(KUSTOMIZE_VERSION).stamp:
	@mkdir -p $(TOOLS_BIN)
	GOBIN=$(abspath $(TOOLS_BIN)) GOFLAGS=-trimpath $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	@$(KUSTOMIZE) version | grep -qx '$(KUSTOMIZE_VERSION)' || { echo "kustomize is not $(KUSTOMIZE_VERSION)"; exit 1; }
	@touch $@

$(CHECKOV): requirements/tools.lock
	rm -rf $(TOOLS_VENV)
	$(TOOLS_PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r requirements/tools.lock
	@touch $@

secrets: ## Write random MinIO credentials (root + one per role) to git-ignored manifests/overlays/kind/*.env if missing
	scripts/gen-secrets.sh $(dir $(MINIO_ENV))

kind-load: ## Push the images to the kind registry localhost:5001 (KIND_LOAD=kind: kind load instead)
ifeq ($(KIND_LOAD),kind)
	$(KIND) load docker-image --name $(KIND_CLUSTER) $(BASE_IMAGE) $(TFDV_IMAGE) $(MINIO_IMAGE)
else
	$(DOCKER) push $(BASE_IMAGE)
	$(DOCKER) push $(TFDV_IMAGE)
	$(DOCKER) push $(MINIO_IMAGE)
endif

deploy: $(KUSTOMIZE) secrets ## Deploy MinIO + pinned KFP standalone (our MinIO as artifact store) and wait until ready
	$(KUSTOMIZE) build manifests/base/kfp-cluster-scoped | $(KUBECTL) --context $(KUBE_CONTEXT) apply --server-side --force-conflicts -f -
	$(KUBECTL) --context $(KUBE_CONTEXT) wait --for condition=established --timeout=120s crd/applications.app.k8s.io crd/workflows.argoproj.io crd/scheduledworkflows.kubeflow.org
	@# A Job's template cannot change in place: the bootstrap Job is re-created (it is idempotent).
	$(KUBECTL) --context $(KUBE_CONTEXT) -n mlops-minio delete job minio-buckets --ignore-not-found
	$(KUSTOMIZE) build manifests/overlays/kind | $(KUBECTL) --context $(KUBE_CONTEXT) apply --server-side --force-conflicts -f -
	$(KUSTOMIZE) build manifests/runs/submitter | $(KUBECTL) --context $(KUBE_CONTEXT) apply -f -
	$(PYTHON) scripts/wait_ready.py --context $(KUBE_CONTEXT) -n mlops-minio -n kubeflow --timeout 1800

ui: ## Print the URLs of the KFP UI, KFP API and MinIO on the kind cluster
	@echo "KFP UI:        http://127.0.0.1:8080"
	@echo "KFP API:       $(KFP_HOST)   (mlops submit --host $(KFP_HOST))"
	@echo "MinIO S3 API:  http://127.0.0.1:9000   (no web console; read-only CLI credential: manifests/overlays/kind/role-reader.env)"

submit: ## Submit one run to the kind cluster's KFP and wait for it (PARAMS="--param k=v ...")
	$(PYTHON) -m mlops.cli.main submit --host $(KFP_HOST) --wait $(PARAMS)

k8s-manifests: ## Compile training_pipeline to Kubernetes-native Pipeline/PipelineVersion YAML in manifests/pipelines/
	$(PYTHON) scripts/compile_k8s_native.py manifests/pipelines

checkov: $(CHECKOV) ## Scan manifests and Dockerfiles with checkov (skips are justified inline)
	$(CHECKOV) --quiet --compact --skip-download --framework kubernetes dockerfile github_actions \
	  -d manifests -d images -d .github/workflows --skip-path manifests/base/kfp/

manifests-check: $(KUSTOMIZE) ## kustomize build + strict schema validation of every manifest, then checkov
	$(PYTHON) -m pytest -q tests/cluster/test_cluster_manifests.py
	$(MAKE) checkov

gitops-app: ## Print the Argo CD Application with repoURL set (REPO_URL=https://github.com/you/fork.git)
	@sed 's#https://github.com/your-org/kfp-mlops.git#$(or $(REPO_URL),$(IMAGE_SOURCE))#' manifests/argocd/application.yaml
