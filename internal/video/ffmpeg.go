package video

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNoFFmpeg is wrapped by every error caused by ffmpeg or ffprobe
// missing.
var ErrNoFFmpeg = errors.New(`ffmpeg not found: install the Debian package "ffmpeg" (apt-get install ffmpeg), or set $GOCLIP_FFMPEG to the ffmpeg binary (ffprobe is looked for beside it)`)

// Tools are the ffmpeg and ffprobe binaries to run.
type Tools struct {
	FFmpeg, FFprobe string
}

// FindTools locates ffmpeg and ffprobe: $GOCLIP_FFMPEG (with ffprobe in
// the same directory), else both on $PATH.
func FindTools() (Tools, error) {
	if p := os.Getenv("GOCLIP_FFMPEG"); p != "" {
		probe := strings.TrimSuffix(p, "ffmpeg") + "ffprobe"
		for _, f := range []string{p, probe} {
			if _, err := exec.LookPath(f); err != nil {
				return Tools{}, fmt.Errorf("video: %w ($GOCLIP_FFMPEG=%s: %v)", ErrNoFFmpeg, p, err)
			}
		}
		return Tools{p, probe}, nil
	}
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		return Tools{}, fmt.Errorf("video: %w", ErrNoFFmpeg)
	}
	fp, err := exec.LookPath("ffprobe")
	if err != nil {
		return Tools{}, fmt.Errorf("video: ffprobe: %w", ErrNoFFmpeg)
	}
	return Tools{ff, fp}, nil
}

// tools returns t, or the located tools when t is nil.
func tools(t *Tools) (Tools, error) {
	if t != nil {
		if t.FFmpeg == "" || t.FFprobe == "" {
			return Tools{}, fmt.Errorf("video: %w (empty tool path)", ErrNoFFmpeg)
		}
		return *t, nil
	}
	return FindTools()
}

// Rational is a fraction such as a time base (1/12800) or a frame rate
// (30000/1001).
type Rational struct{ Num, Den int64 }

// Float returns the fraction as the nearest float64 (0 for a zero
// denominator).
func (r Rational) Float() float64 {
	if r.Den == 0 {
		return 0
	}
	f, _ := new(big.Rat).SetFrac64(r.Num, r.Den).Float64()
	return f
}

func (r Rational) String() string { return fmt.Sprintf("%d/%d", r.Num, r.Den) }

// parseRational parses "a/b" or "a:b" or a plain integer.
func parseRational(s string) (Rational, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		a, b, ok = strings.Cut(s, ":")
	}
	if !ok {
		b = "1"
	}
	n, err1 := strconv.ParseInt(strings.TrimSpace(a), 10, 64)
	d, err2 := strconv.ParseInt(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil || d < 0 {
		return Rational{}, fmt.Errorf("bad fraction %q", s)
	}
	return Rational{n, d}, nil
}

// timeOf returns pts·tb in seconds, correctly rounded.
func timeOf(pts int64, tb Rational) float64 {
	if tb.Den == 0 {
		return 0
	}
	num := new(big.Int).Mul(big.NewInt(pts), big.NewInt(tb.Num))
	f, _ := new(big.Rat).SetFrac(num, big.NewInt(tb.Den)).Float64()
	return f
}

// Info describes a video file's first video stream.
type Info struct {
	Path   string
	Format string // container, as ffprobe names it ("mov,mp4,m4a,3gp,3g2,mj2")
	Codec  string
	Width  int
	Height int
	// FrameRate is the stream's frame rate (r_frame_rate; 0/0 when
	// unknown), TimeBase its time base.
	FrameRate Rational
	TimeBase  Rational
	// Duration is the stream's (else the container's) duration in
	// seconds, 0 when unknown.
	Duration float64
	// Frames is the stream's frame count when the container says it (or
	// when counted), else 0.
	Frames int64
}

// probeJSON is the part of ffprobe's -print_format json output read.
type probeJSON struct {
	Streams []struct {
		CodecType     string `json:"codec_type"`
		CodecName     string `json:"codec_name"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		RFrameRate    string `json:"r_frame_rate"`
		TimeBase      string `json:"time_base"`
		Duration      string `json:"duration"`
		NbFrames      string `json:"nb_frames"`
		NbReadPackets string `json:"nb_read_packets"`
		Disposition   struct {
			AttachedPic int `json:"attached_pic"`
		} `json:"disposition"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
}

// errNotVideo is wrapped by errors about files that hold no video.
var errNotVideo = errors.New("not a video")

// parseProbe reads ffprobe's JSON for path.
func parseProbe(data []byte, path string) (*Info, error) {
	var p probeJSON
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("video: %s: bad ffprobe output: %v", path, err)
	}
	info := &Info{Path: path, Format: p.Format.FormatName}
	if strings.HasSuffix(info.Format, "_pipe") || info.Format == "image2" {
		return nil, fmt.Errorf("video: %s: %w (a still image, format %s)", path, errNotVideo, info.Format)
	}
	found := false
	for _, s := range p.Streams {
		if s.CodecType != "video" || s.Disposition.AttachedPic != 0 {
			continue
		}
		found = true
		info.Codec, info.Width, info.Height = s.CodecName, s.Width, s.Height
		info.FrameRate, _ = parseRational(s.RFrameRate)
		info.TimeBase, _ = parseRational(s.TimeBase)
		info.Duration, _ = strconv.ParseFloat(s.Duration, 64)
		info.Frames, _ = strconv.ParseInt(s.NbFrames, 10, 64)
		if n, err := strconv.ParseInt(s.NbReadPackets, 10, 64); err == nil {
			info.Frames = n
		}
		break
	}
	if !found {
		return nil, fmt.Errorf("video: %s: %w (no video stream in %s)", path, errNotVideo, orUnknown(info.Format))
	}
	if info.Duration <= 0 {
		info.Duration, _ = strconv.ParseFloat(p.Format.Duration, 64)
	}
	if info.Duration < 0 || math.IsNaN(info.Duration) || math.IsInf(info.Duration, 0) {
		info.Duration = 0
	}
	return info, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown format"
	}
	return s
}

// Probe describes the first video stream of the file at path with
// ffprobe (t nil: FindTools). With count it also counts the stream's
// packets (reading, not decoding, the whole file) to know the frame count.
func Probe(ctx context.Context, path string, t *Tools, count bool) (*Info, error) {
	tl, err := tools(t)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("video: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("video: %s is a directory", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("video: %s: %w (empty file)", path, errNotVideo)
	}
	args := []string{"-v", "error", "-print_format", "json", "-show_format", "-show_streams", "-select_streams", "V"}
	if count {
		args = append(args, "-count_packets")
	}
	args = append(args, "-i", inputArg(path))
	cmd := exec.CommandContext(ctx, tl.FFprobe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("video: %s: %w", tl.FFprobe, ErrNoFFmpeg)
		}
		msg := lastLines(stderr.String(), 3)
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("video: %s: %w (ffprobe: %s)", path, errNotVideo, msg)
	}
	return parseProbe(stdout.Bytes(), path)
}

// inputArg protects paths that ffmpeg would read as a protocol or option.
func inputArg(path string) string {
	if strings.HasPrefix(path, "-") || strings.Contains(path, ":") {
		return "file:" + path
	}
	return path
}

// lastLines returns the last n non-empty lines of s joined by "; ",
// without ffmpeg's "[component @ 0x…]" prefixes.
func lastLines(s string, n int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = cleanLog(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "; ")
}

// cleanLog strips the "[ctx @ 0x…] " and "[level] " prefixes of an
// ffmpeg log line.
func cleanLog(l string) string {
	l = strings.TrimSpace(l)
	for strings.HasPrefix(l, "[") {
		end := strings.IndexByte(l, ']')
		if end < 0 {
			break
		}
		l = strings.TrimSpace(l[end+1:])
	}
	return l
}
