package video

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var sprintf = fmt.Sprintf

func TestExtractTimestamps(t *testing.T) {
	dir := t.TempDir()
	const rate, secs = 25, 3
	v := testsrc(t, dir, "src.mp4", 64, 48, rate, secs)
	total := rate * secs
	uniform := func(n int) []float64 {
		var out []float64
		prev := -1
		for k := 0; k < n; k++ {
			i := (2*k + 1) * total / (2 * n) // ⌊(k+½)·T/N⌋
			if i != prev {
				out = append(out, float64(i)/rate)
			}
			prev = i
		}
		return out
	}
	grid := func(n int, fps float64) []float64 {
		out := make([]float64, n)
		for k := range out {
			out[k] = float64(k) / fps
		}
		return out
	}
	for _, tc := range []struct {
		name string
		o    Options
		want []float64
	}{
		{"default 1 fps", Options{}, grid(3, 1)},
		{"5 fps", Options{FPS: 5}, grid(15, 5)},
		{"2.5 fps", Options{FPS: 2.5}, grid(8, 2.5)},
		{"every source frame", Options{FPS: rate}, grid(total, rate)},
		{"4 uniform", Options{Frames: 4}, uniform(4)},
		{"7 uniform", Options{Frames: 7}, uniform(7)},
		{"more uniform than frames", Options{Frames: 2 * total}, grid(total, rate)},
		{"limit", Options{FPS: 5, Limit: 4}, grid(4, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, info, err := ReadFrames(context.Background(), v, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if info.Width != 64 || info.Height != 48 || info.Duration != secs {
				t.Errorf("info %+v", info)
			}
			if len(frames) != len(tc.want) {
				t.Fatalf("%d frames, want %d", len(frames), len(tc.want))
			}
			for i, f := range frames {
				if f.Time != tc.want[i] || f.Index != i {
					t.Errorf("frame %d: index %d time %v (pts %d × %v), want %v", i, f.Index, f.Time, f.PTS, f.TimeBase, tc.want[i])
				}
				if f.Image.Width != 64 || f.Image.Height != 48 || len(f.Image.Pix) != 64*48*3 {
					t.Errorf("frame %d: %dx%d, %d bytes", i, f.Image.Width, f.Image.Height, len(f.Image.Pix))
				}
			}
		})
	}
}

func TestExtractPixels(t *testing.T) {
	dir := t.TempDir()
	// Lossless FFV1 in RGB: the decoded pixels are exactly the colour.
	p := filepath.Join(dir, "red.mkv")
	ffmpeg(t, "-f", "lavfi", "-i", "color=c=0xC81E64:size=40x30:rate=10,format=bgr0", "-t", "1", "-c:v", "ffv1", "-pix_fmt", "bgr0", p)
	frames, _, err := ReadFrames(context.Background(), p, Options{FPS: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 {
		t.Fatalf("%d frames, want 2", len(frames))
	}
	for _, f := range frames {
		for i := 0; i < len(f.Image.Pix); i += 3 {
			if r, g, b := f.Image.Pix[i], f.Image.Pix[i+1], f.Image.Pix[i+2]; r != 0xC8 || g != 0x1E || b != 0x64 {
				t.Fatalf("frame %d pixel %d = %d,%d,%d, want 200,30,100", f.Index, i/3, r, g, b)
			}
		}
	}
	// Downscaled (thumbnails) and sought.
	frames, _, err = ReadFrames(context.Background(), p, Options{Start: 0.5, Limit: 1, MaxSide: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 1 || frames[0].Image.Width != 20 || frames[0].Image.Height != 15 || frames[0].Time < 0.5 {
		t.Fatalf("sought frame: %d frames, %+v", len(frames), frames)
	}
	// MaxSide never enlarges.
	f, err := FrameAt(context.Background(), p, 0, 100, nil)
	if err != nil || f.Image.Width != 40 || f.Image.Height != 30 {
		t.Fatalf("FrameAt with a larger MaxSide: %v", err)
	}
	if _, err := FrameAt(context.Background(), p, 50, 0, nil); err == nil {
		t.Error("FrameAt past the end succeeded")
	}
}

func TestExtractBadInput(t *testing.T) {
	dir := t.TempDir()
	needFFmpeg(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	text := write("notes.mp4", []byte("this is not a video at all\n"))
	empty := write("empty.mp4", nil)
	still := filepath.Join(dir, "still.png")
	ffmpeg(t, "-f", "lavfi", "-i", "color=c=blue:size=16x16", "-frames:v", "1", still)
	audio := filepath.Join(dir, "tone.wav")
	ffmpeg(t, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.2", audio)
	// A video stream without a single frame.
	zero := filepath.Join(dir, "zero.avi")
	ffmpeg(t, "-f", "lavfi", "-i", "testsrc=size=32x24:rate=10", "-frames:v", "0", "-c:v", "mpeg4", zero)

	for _, tc := range []struct {
		name, path string
		noFrames   bool
		want       string
	}{
		{"text", text, false, "not a video"},
		{"empty file", empty, false, "empty file"},
		{"still image", still, false, "still image"},
		{"audio only", audio, false, "no video stream"},
		{"zero-length", zero, true, ""},
		{"missing", filepath.Join(dir, "nope.mp4"), false, "no such file"},
		{"directory", dir, false, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			_, err := Extract(context.Background(), tc.path, Options{}, func(*Frame) error { n++; return nil })
			if err == nil {
				t.Fatal("no error")
			}
			if n != 0 {
				t.Errorf("%d frames delivered", n)
			}
			if tc.noFrames && !errors.Is(err, ErrNoFrames) {
				t.Errorf("error %v does not wrap ErrNoFrames", err)
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the file", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestExtractTruncated(t *testing.T) {
	dir := t.TempDir()
	v := testsrc(t, dir, "full.mp4", 64, 48, 25, 4)
	data, err := os.ReadFile(v)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.mp4")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	frames, _, err := ReadFrames(context.Background(), cut, Options{FPS: 5})
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T), want a *DecodeError", err, err)
	}
	if len(frames) == 0 || len(frames) >= 20 || de.Frames != len(frames) || de.Last != frames[len(frames)-1].Time {
		t.Fatalf("%d frames kept, error says %d (last %v)", len(frames), de.Frames, de.Last)
	}
	for i, f := range frames {
		if f.Time != float64(i)/5 {
			t.Errorf("frame %d at %v", i, f.Time)
		}
	}
	msg := err.Error()
	if !strings.Contains(msg, cut) || !strings.Contains(msg, sprintf("after %d frames", len(frames))) {
		t.Errorf("error %q does not say where decoding stopped", msg)
	}
	t.Logf("%d of 20 frames kept: %v", len(frames), err)
}

func TestMissingFFmpeg(t *testing.T) {
	t.Setenv("GOCLIP_FFMPEG", "")
	t.Setenv("PATH", t.TempDir())
	_, err := FindTools()
	if !errors.Is(err, ErrNoFFmpeg) || !strings.Contains(err.Error(), `Debian package "ffmpeg"`) {
		t.Fatalf("FindTools without ffmpeg: %v", err)
	}
	_, err = Extract(context.Background(), "x.mp4", Options{}, func(*Frame) error { return nil })
	if !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("Extract without ffmpeg: %v", err)
	}
	bad := Tools{FFmpeg: "/nonexistent/ffmpeg", FFprobe: "/nonexistent/ffprobe"}
	p := filepath.Join(t.TempDir(), "v.mp4")
	os.WriteFile(p, []byte("x"), 0o644)
	if _, err := Probe(context.Background(), p, &bad, false); !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("Probe with a missing ffprobe: %v", err)
	}
	t.Setenv("GOCLIP_FFMPEG", "/nonexistent/ffmpeg")
	if _, err := FindTools(); !errors.Is(err, ErrNoFFmpeg) {
		t.Fatalf("FindTools with a bad $GOCLIP_FFMPEG: %v", err)
	}
}
