// etcd's server command at a pinned release, built with plain `go build`:
// go.etcd.io/etcd/server/v3 cannot be `go install`ed because its go.mod
// replaces the sibling etcd modules with local directories, so this wrapper
// pins them (go.mod) and calls the same entry point as etcd's own main.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
