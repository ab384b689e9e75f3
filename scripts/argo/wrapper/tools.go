//go:build tools

// Package wrapper pins Argo Workflows' two in-cluster commands as dependencies of
// this module, so go.mod and go.sum hold their whole build list (scripts/argo/build.sh
// builds them; the build tag keeps this file out of every build).
package wrapper

import (
	_ "github.com/argoproj/argo-workflows/v3/cmd/argoexec"
	_ "github.com/argoproj/argo-workflows/v3/cmd/workflow-controller"
)
