package kernels

import (
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestSetKernel(t *testing.T) {
	names := Kernels()
	if len(names) == 0 || names[len(names)-1] != "go" {
		t.Fatalf("Kernels() = %v, want the portable kernel last", names)
	}
	if !slices.Contains(names, Kernel()) {
		t.Fatalf("Kernel() = %q not in %v", Kernel(), names)
	}
	if err := SetKernel("no-such-kernel"); err == nil || !strings.Contains(err.Error(), "no-such-kernel") {
		t.Fatalf("SetKernel(bogus) = %v, want an error naming it", err)
	}
	t.Logf("kernels here: %v (default %s)", names, Kernel())
}

// TestKernelEnv checks that GOCLIP_KERNEL selects the kernel at start-up, by
// re-running this test binary.
func TestKernelEnv(t *testing.T) {
	if want := os.Getenv("GOCLIP_KERNEL_WANT"); want != "" {
		if got := Kernel(); got != want {
			t.Fatalf("with GOCLIP_KERNEL=%s, Kernel() = %q", os.Getenv("GOCLIP_KERNEL"), got)
		}
		return
	}
	if testing.Short() {
		t.Skip("spawns subprocesses")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	for _, name := range Kernels() {
		cmd := exec.Command(exe, "-test.run=^TestKernelEnv$", "-test.count=1")
		cmd.Env = append(os.Environ(), "GOCLIP_KERNEL="+name, "GOCLIP_KERNEL_WANT="+name)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Skipf("cannot re-run the test binary: %v", err) // e.g. under an emulator
		}
		if err != nil {
			t.Errorf("GOCLIP_KERNEL=%s: %v\n%s", name, err, out)
		}
	}
	// An unknown name falls back to the best kernel, with a warning.
	cmd := exec.Command(exe, "-test.run=^TestKernelEnv$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GOCLIP_KERNEL=bogus", "GOCLIP_KERNEL_WANT="+Kernels()[0])
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "bogus") {
		t.Errorf("GOCLIP_KERNEL=bogus: err=%v, output lacks a warning:\n%s", err, out)
	}
}
