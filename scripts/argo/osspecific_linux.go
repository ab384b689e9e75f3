// The Linux half of package workflow/executor/osspecific of Argo Workflows, which
// the module as served by the Go proxy lacks: only its darwin and windows files
// define these five names, so cmd/argoexec does not compile for Linux from the
// module zip. scripts/argo/build.sh copies the module out of the module cache and
// adds this file to that package as signal_linux.go. Written for kfp-mlops from
// what cmd/argoexec/commands/emissary.go expects of these functions; not upstream code.
//
// The emissary (argoexec as PID 1 of a step's main container) starts the step's
// command in its own process group, forwards signals to that group, and must reap
// every child (zombies of backgrounded grandchildren included) while it waits for
// the command's exit status.

package osspecific

import (
	"errors"
	"os"
	"syscall"

	argoerrors "github.com/argoproj/argo-workflows/v3/util/errors"
)

// Term is the signal that asks a step's command to stop.
var Term os.Signal = syscall.SIGTERM

// CanIgnoreSignal reports the signals the emissary must not forward: SIGCHLD is
// its own business (it reaps children itself) and SIGURG is the Go runtime's
// goroutine preemption signal.
func CanIgnoreSignal(s os.Signal) bool {
	switch s {
	case syscall.SIGCHLD, syscall.SIGURG:
		return true
	}
	return false
}

// Setpgid makes the command the leader of a new process group, so Kill reaches
// whatever it starts too.
func Setpgid(attr *syscall.SysProcAttr) {
	attr.Setpgid = true
}

// Kill sends s to the process group of pid, or to pid alone when it has none.
func Kill(pid int, s syscall.Signal) error {
	if group, err := syscall.Getpgid(pid); err == nil {
		return syscall.Kill(-group, s)
	}
	return syscall.Kill(pid, s)
}

// Wait reaps children until process exits and returns its status as an
// argo ExitErr (nil for exit code 0). The os.Process is released first: as PID 1
// we reap with wait4(-1), which would race with os.Process.Wait.
func Wait(process *os.Process) error {
	pid := process.Pid
	if err := process.Release(); err != nil {
		return err
	}
	for {
		var status syscall.WaitStatus
		reaped, err := syscall.Wait4(-1, &status, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if reaped != pid {
			continue // an orphan re-parented to us
		}
		switch {
		case status.Exited():
			return argoerrors.NewExitErr(status.ExitStatus())
		case status.Signaled():
			return argoerrors.NewExitErr(128 + int(status.Signal()))
		}
	}
}
