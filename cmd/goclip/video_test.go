package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goclip/goclip/internal/video"
)

// needFFmpegCLI skips when ffmpeg is absent and returns a function that
// runs it.
func needFFmpegCLI(t *testing.T) func(args ...string) {
	t.Helper()
	tl, err := video.FindTools()
	if err != nil {
		t.Skipf("skipping: %v (the test generates videos with ffmpeg from the Debian package \"ffmpeg\")", err)
	}
	return func(args ...string) {
		t.Helper()
		cmd := exec.Command(tl.FFmpeg, append([]string{"-hide_banner", "-nostdin", "-loglevel", "error", "-y"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("ffmpeg %q: %v\n%s", args, err, stderr.String())
		}
	}
}

func TestVideoCLI(t *testing.T) {
	fix, models := fixtureModels(t)
	ff := needFFmpegCLI(t)
	tok := filepath.Join(fix, "tokenizer")
	vids := t.TempDir()
	// Two colour shots (2 s each) then a test pattern: 6 s at 1 fps.
	clip := filepath.Join(vids, "shots.mkv")
	ff("-f", "lavfi", "-i", "color=c=red:size=64x48:rate=10:d=2", "-f", "lavfi", "-i", "color=c=blue:size=64x48:rate=10:d=2",
		"-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:d=2",
		"-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0,format=bgr0[v]", "-map", "[v]", "-c:v", "ffv1", clip)
	os.WriteFile(filepath.Join(vids, "broken.mp4"), []byte("not a video"), 0o644)
	still := filepath.Join(t.TempDir(), "blue.png")
	ff("-f", "lavfi", "-i", "color=c=blue:size=64x48", "-frames:v", "1", still)
	db := filepath.Join(t.TempDir(), "index.db")
	mflags := []string{"--model", models[0], "--tokenizer", tok}

	// classify: JSON per video, clip labels plus 2 s windows.
	out, stderr, rc := goclip(t, append(append([]string{"video", "classify"}, mflags...),
		"--labels", "red,blue,a test pattern", "--window", "2s", "--json", "--no-cache", "--quiet", clip)...)
	if rc != 0 {
		t.Fatalf("classify rc=%d: %s", rc, stderr)
	}
	var c video.Classification
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("classify output %q: %v", out, err)
	}
	if c.Video != clip || c.Frames != 6 || len(c.Labels) != 3 || len(c.Segments) != 3 || c.Segments[2].Start != 4 || c.Segments[2].End != 6 {
		t.Errorf("classification %+v", c)
	}
	_, stderr, rc = goclip(t, append(append([]string{"video", "classify"}, mflags...), "--labels", "a,b", "--no-cache", "--quiet", clip, filepath.Join(vids, "broken.mp4"))...)
	if rc != 1 || !strings.Contains(stderr, "broken.mp4") || !strings.Contains(stderr, "1 of 2 video(s)") {
		t.Errorf("classify with a broken video: rc=%d %s", rc, stderr)
	}

	// index, then search by image: the blue shot is the best moment.
	_, stderr, rc = goclip(t, append(append([]string{"video", "index", "--db", db, "--quiet"}, mflags...), vids)...)
	if rc != 0 || !strings.Contains(stderr, "2 videos found") || !strings.Contains(stderr, "1 new") || !strings.Contains(stderr, "1 failed") {
		t.Fatalf("index rc=%d: %s", rc, stderr)
	}
	out, stderr, rc = goclip(t, append(append([]string{"video", "search", "--db", db, "--json", "--top", "2"}, mflags...), "--image", still)...)
	if rc != 0 {
		t.Fatalf("search rc=%d: %s", rc, stderr)
	}
	if !strings.HasPrefix(out, `[{"video":`) || !strings.Contains(out, `"start":2.0,"end":4.0`) {
		t.Errorf("search output %s", out)
	}
	var ms []video.Moment
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 2 {
		t.Fatalf("search JSON %q: %v", out, err)
	}
	if ms[0].Start != 2 || ms[0].End != 4 || ms[0].Score < 0.99 || ms[1].Score > ms[0].Score {
		t.Errorf("moments %+v", ms)
	}
	out, _, rc = goclip(t, append(append([]string{"video", "search", "--db", db}, mflags...), "a test pattern")...)
	if rc != 0 || !strings.HasPrefix(out, "score") || !strings.Contains(out, clip) {
		t.Errorf("text search rc=%d: %s", rc, out)
	}

	// thumb
	thumb := filepath.Join(t.TempDir(), "t.jpg")
	if _, stderr, rc := goclip(t, "video", "thumb", "--at", "3", "--size", "32", "-o", thumb, clip); rc != 0 {
		t.Fatalf("thumb rc=%d: %s", rc, stderr)
	}
	if data, err := os.ReadFile(thumb); err != nil || len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		t.Errorf("thumbnail is not a JPEG: %v", err)
	}

	// usage errors
	for _, args := range [][]string{
		{"video"},
		{"video", "nope"},
		{"video", "classify", "--labels", "a", "--window", "five", clip},
		{"video", "classify", "--labels", "a", "--fps", "2", "--frames", "3", clip},
		{"video", "search"},
		{"video", "search", "--shot-threshold", "2", "x"},
		{"video", "index"},
		{"video", "thumb", clip},
	} {
		if _, stderr, rc := goclip(t, args...); rc != 2 {
			t.Errorf("%q: rc=%d, want 2 (%s)", args, rc, stderr)
		}
	}
}

func TestVideoCLINoFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("GOCLIP_FFMPEG", "")
	_, stderr, rc := goclip(t, "video", "thumb", "--at", "1", "x.mp4")
	if rc != 1 || !strings.Contains(stderr, `Debian package "ffmpeg"`) {
		t.Errorf("rc=%d: %s", rc, stderr)
	}
}
