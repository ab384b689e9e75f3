//go:build tools

// Package tools keeps the controllers' modules in this wrapper's go.mod and go.sum.
// A tools file cannot import a main package, so it imports the API packages of the
// same modules; scripts/flux/build.sh builds the main packages by path.
package tools

import (
	_ "github.com/fluxcd/kustomize-controller/api/v1"
	_ "github.com/fluxcd/source-controller/api/v1"
)
