//go:build !linux && !386 && !arm && !mips && !mipsle

package weaviate

import "os/exec"

func runInNetns() (int, error) { return 0, errNoNetns }

func loopbackUp() error { return errNoNetns }

func dieWithParent(*exec.Cmd) {}
