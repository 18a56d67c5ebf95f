package video

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"testing"
)

// needFFmpeg skips the test when ffmpeg and ffprobe are not installed.
func needFFmpeg(tb testing.TB) Tools {
	tb.Helper()
	t, err := FindTools()
	if err != nil {
		tb.Skipf("skipping: %v (the tests generate their videos with ffmpeg from the Debian package \"ffmpeg\")", err)
	}
	return t
}

// ffmpeg runs ffmpeg with args (overwriting outputs) and fails the test
// on error.
func ffmpeg(tb testing.TB, args ...string) {
	tb.Helper()
	t := needFFmpeg(tb)
	cmd := exec.Command(t.FFmpeg, append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("ffmpeg %q: %v\n%s", args, err, stderr.String())
	}
}

// testsrc writes a w×h testsrc video of the given length and rate with
// the native mpeg4 encoder (present in every ffmpeg build) in an MP4 with
// the index at the front, and returns its path.
func testsrc(tb testing.TB, dir, name string, w, h, rate int, seconds float64) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	ffmpeg(tb, "-f", "lavfi", "-i", sprintf("testsrc=size=%dx%d:rate=%d", w, h, rate), "-t", sprintf("%g", seconds),
		"-c:v", "mpeg4", "-q:v", "2", "-pix_fmt", "yuv420p", "-movflags", "+faststart", p)
	return p
}
