# Pinned versions of everything scripts/kind/build.sh builds for a kind cluster
# made without a container registry (sourced by scripts/kind/*.sh and read by
# mk/kind.mk). Cache keys and image tags include these, so bumping one rebuilds
# only what depends on it.
KIND_VERSION=v0.33.0
# Kubernetes through the wrapper module scripts/kind/k8s-wrapper (its go.mod pins
# the staging modules at the matching v0.X.Y: bump both together).
K8S_VERSION=v1.34.4
K8S_BUILD_DATE=2026-02-10T12:53:36Z   # the module's release time, for version stamps
# `kubeadm config images list --kubernetes-version $K8S_VERSION` names these tags.
ETCD_VERSION=3.6.5                    # module go.etcd.io/etcd/server/v3, via scripts/kind/etcd-wrapper
ETCD_IMAGE_TAG=3.6.5-0
COREDNS_VERSION=v1.12.1
PAUSE_VERSION=3.10.1                  # build/pause/linux/pause.c of the Kubernetes module
LOCAL_PATH_VERSION=v0.0.30            # github.com/rancher/local-path-provisioner (PVCs)
KUBE_ROUTER_VERSION=v2.1.0            # github.com/cloudnativelabs/kube-router/v2 (NetworkPolicy only)
# The node's userland, containerd, runc and CNI plugins: Debian packages.
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# CRDs that the live tests install for server-side dry runs of our manifests,
# read from these modules' files (build.sh crds). KFP's own CRDs (ScheduledWorkflow,
# Pipeline, PipelineVersion, and its v1 copy of app.k8s.io's Application) are not
# among them: github.com/kubeflow/pipelines is not served by the Go module proxy
# (and sigs.k8s.io/application v0.8.2 ships only an apiextensions v1beta1 CRD,
# which Kubernetes has not accepted since 1.22).
ARGOCD_VERSION=v3.5.7                 # newest github.com/argoproj/argo-cd/v3 that Go 1.26 accepts
ARGO_WORKFLOWS_VERSION=v3.7.3         # the only github.com/argoproj/argo-workflows/v3 served
