package video

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/goclip/goclip/internal/imageproc"
)

// DefaultFPS is the sampling rate used when Options sets neither FPS nor
// Frames.
const DefaultFPS = 1

// MaxFramePixels bounds a decoded frame's width×height (a 16K frame).
const MaxFramePixels = 15360 * 8640

// Options says which frames Extract samples.
type Options struct {
	// FPS samples the video at this many frames per second (ffmpeg's fps
	// filter: frame k is the source frame nearest to k/FPS, stamped
	// k/FPS). Default DefaultFPS.
	FPS float64
	// Frames, when > 0, samples this many frames spread uniformly over
	// the video instead: frame k is source frame ⌊(k+½)·T/N⌋ of T,
	// stamped with its own timestamp (fewer when the video has fewer
	// frames).
	Frames int
	// Start seeks to this time (seconds) before sampling; frame times
	// stay relative to the start of the video.
	Start float64
	// Limit stops after this many frames (0: no limit).
	Limit int
	// MaxSide, when > 0, has ffmpeg scale frames down so that neither
	// side exceeds it (for thumbnails; CLIP embeddings use full frames).
	MaxSide int
	// Tools are the binaries to run (nil: FindTools).
	Tools *Tools
}

func (o *Options) fps() float64 {
	if o.FPS > 0 {
		return o.FPS
	}
	return DefaultFPS
}

func (o *Options) validate() error {
	switch {
	case o.Frames < 0:
		return fmt.Errorf("video: %d frames requested", o.Frames)
	case o.Frames == 0 && (o.FPS < 0 || math.IsNaN(o.FPS) || math.IsInf(o.FPS, 0) || o.FPS > 1000):
		return fmt.Errorf("video: bad sampling rate %v frames per second (want a number in (0, 1000])", o.FPS)
	case o.Start < 0 || math.IsNaN(o.Start) || math.IsInf(o.Start, 0):
		return fmt.Errorf("video: bad start time %v", o.Start)
	case o.Limit < 0 || o.MaxSide < 0:
		return fmt.Errorf("video: negative limit or size")
	}
	return nil
}

// Sampling describes the sampling ("fps=1", "frames=16"); indexes
// re-extract a video when it changes.
func (o *Options) Sampling() string {
	if o.Frames > 0 {
		return "frames=" + strconv.Itoa(o.Frames)
	}
	return "fps=" + strconv.FormatFloat(o.fps(), 'g', -1, 64)
}

// Step returns the seconds one sampled frame stands for in a video of
// duration seconds: 1/FPS, or duration/Frames.
func (o *Options) Step(duration float64) float64 {
	if o.Frames > 0 {
		if duration > 0 {
			return duration / float64(o.Frames)
		}
		return 0
	}
	return 1 / o.fps()
}

// Frame is one decoded frame.
type Frame struct {
	// Index counts the frames Extract delivered, from 0.
	Index int
	// PTS and TimeBase are the frame's timestamp as ffmpeg has it; Time
	// is PTS×TimeBase in seconds (plus Options.Start), exact to float64
	// rounding, from the start of the video.
	PTS      int64
	TimeBase Rational
	Time     float64
	// Image is the frame in RGB (imageproc.ModeRGB).
	Image *imageproc.Image
}

// DecodeError reports that decoding stopped with errors (a truncated or
// corrupt file) after Frames frames had been delivered.
type DecodeError struct {
	Path string
	// Frames is the number of frames delivered before the error, Last the
	// time of the last one (seconds; meaningless when Frames is 0).
	Frames int
	Last   float64
	// Messages are ffmpeg's error messages.
	Messages []string
}

func (e *DecodeError) Error() string {
	where := "before the first frame"
	if e.Frames > 0 {
		where = fmt.Sprintf("after %d frames (last at %.3f s)", e.Frames, e.Last)
	}
	return fmt.Sprintf("video: %s: decoding stopped %s: %s", e.Path, where, strings.Join(e.Messages, "; "))
}

// ErrNoFrames is wrapped by the error for a video that decodes to no
// frames (a zero-length video).
var ErrNoFrames = errors.New("no frames decoded (zero-length video)")

// Extract decodes the frames o selects from the video at path with
// ffmpeg, in order, and calls fn with each (fn may keep the frame). The
// frames travel as raw RGB through a pipe, no temporary files; their
// timestamps come from ffmpeg's showinfo filter on the same frames.
//
// A file ffmpeg cannot open or that has no video stream is an error
// wrapping "not a video"; one that decodes to no frames wraps
// ErrNoFrames. When decoding fails part way (a truncated file), the
// frames before the failure have been delivered and the error is a
// *DecodeError saying where it stopped. An error from fn stops ffmpeg and
// is returned as is. The returned Info is set whenever the file could be
// probed.
func Extract(ctx context.Context, path string, o Options, fn func(*Frame) error) (*Info, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	tl, err := tools(o.Tools)
	if err != nil {
		return nil, err
	}
	info, err := Probe(ctx, path, &tl, o.Frames > 0)
	if err != nil {
		return nil, err
	}
	var filters []string
	if o.Frames > 0 {
		if info.Frames <= 0 {
			return info, fmt.Errorf("video: %s: %w (the stream has no packets to sample %d frames from)", path, ErrNoFrames, o.Frames)
		}
		n, t := o.Frames, info.Frames
		// Frame n is kept when some k has ⌊(k+½)·T/N⌋ = n.
		filters = append(filters, fmt.Sprintf("select='gt(ceil((n+1)*%d/%d-0.5),ceil(n*%d/%d-0.5))'", n, t, n, t))
	} else {
		filters = append(filters, "fps="+strconv.FormatFloat(o.fps(), 'g', -1, 64))
	}
	if o.MaxSide > 0 {
		filters = append(filters, fmt.Sprintf("scale=w='min(iw,%d)':h='min(ih,%d)':force_original_aspect_ratio=decrease", o.MaxSide, o.MaxSide))
	}
	filters = append(filters, "format=rgb24", "showinfo=checksum=0")
	args := []string{"-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info"}
	if o.Start > 0 {
		args = append(args, "-ss", strconv.FormatFloat(o.Start, 'f', -1, 64))
	}
	args = append(args, "-i", inputArg(path), "-map", "0:V:0", "-an", "-sn", "-dn",
		"-vf", strings.Join(filters, ","), "-fps_mode", "passthrough")
	if o.Limit > 0 {
		args = append(args, "-frames:v", strconv.Itoa(o.Limit))
	}
	args = append(args, "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, tl.FFmpeg, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return info, fmt.Errorf("video: %w", err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return info, fmt.Errorf("video: %w", err)
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return info, fmt.Errorf("video: %s: %w", tl.FFmpeg, ErrNoFFmpeg)
		}
		return info, fmt.Errorf("video: starting ffmpeg: %w", err)
	}
	lg := newLogReader()
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		lg.read(stderr)
	}()

	br := bufio.NewReaderSize(stdout, 1<<20)
	n := 0
	last := 0.0
	var loopErr error
	for {
		m, ok := lg.next()
		if !ok {
			break
		}
		if m.format != "rgb24" || m.w <= 0 || m.h <= 0 || int64(m.w)*int64(m.h) > MaxFramePixels {
			loopErr = fmt.Errorf("video: %s: ffmpeg produced a %dx%d %s frame (want rgb24 of at most %d pixels)", path, m.w, m.h, m.format, MaxFramePixels)
			break
		}
		img := &imageproc.Image{Mode: imageproc.ModeRGB, Width: m.w, Height: m.h, Pix: make([]uint8, m.w*m.h*3)}
		if _, err := io.ReadFull(br, img.Pix); err != nil {
			lg.addError(fmt.Sprintf("ffmpeg's output ended inside frame %d (%v)", n, err))
			break
		}
		tb := lg.timeBase()
		if tb.Den <= 0 {
			loopErr = fmt.Errorf("video: %s: ffmpeg's showinfo filter gave no time base (unsupported ffmpeg version?)", path)
			break
		}
		f := &Frame{Index: n, PTS: m.pts, TimeBase: tb, Time: timeOf(m.pts, tb) + o.Start, Image: img}
		if err := fn(f); err != nil {
			loopErr = err
			break
		}
		n++
		last = f.Time
		if o.Limit > 0 && n >= o.Limit {
			break
		}
	}
	if loopErr != nil || (o.Limit > 0 && n >= o.Limit) {
		cancel()
		io.Copy(io.Discard, br)
		<-logDone
		cmd.Wait()
		return info, loopErr
	}
	extra, _ := io.Copy(io.Discard, br)
	<-logDone
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return info, ctx.Err()
	}
	msgs := lg.errors()
	if extra > 0 {
		msgs = append(msgs, fmt.Sprintf("%d bytes of output without frame information", extra))
	}
	if waitErr != nil && len(msgs) == 0 {
		msgs = append(msgs, "ffmpeg: "+waitErr.Error())
		if t := lg.tail(); t != "" {
			msgs[0] += " (" + t + ")"
		}
	}
	if len(msgs) > 0 {
		if n == 0 {
			kind := ErrNoFrames
			if lg.inputFailed() {
				kind = errNotVideo
			}
			return info, fmt.Errorf("video: %s: %w (ffmpeg: %s)", path, kind, strings.Join(msgs, "; "))
		}
		return info, &DecodeError{Path: path, Frames: n, Last: last, Messages: msgs}
	}
	if n == 0 {
		return info, fmt.Errorf("video: %s: %w", path, ErrNoFrames)
	}
	return info, nil
}

// ReadFrames returns every frame Extract delivers; on a *DecodeError the
// frames decoded before it come with it.
func ReadFrames(ctx context.Context, path string, o Options) ([]*Frame, *Info, error) {
	var out []*Frame
	info, err := Extract(ctx, path, o, func(f *Frame) error {
		out = append(out, f)
		return nil
	})
	return out, info, err
}

// frameMeta is what showinfo says about one frame.
type frameMeta struct {
	n, pts int64
	format string
	w, h   int
}

// logReader parses ffmpeg's stderr (-loglevel level+info): showinfo's
// frame lines go to a queue the stdout reader consumes in order; error
// lines are collected.
type logReader struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []frameMeta
	closed bool
	tb     Rational
	errs   []string
	last   []string
	noIn   bool
}

func newLogReader() *logReader {
	l := &logReader{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *logReader) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l.line(sc.Text())
	}
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *logReader) line(s string) {
	level, msg := splitLog(s)
	l.mu.Lock()
	defer l.mu.Unlock()
	if strings.Contains(s, "Parsed_showinfo") {
		if m, ok := parseShowinfo(msg); ok {
			l.queue = append(l.queue, m)
			l.cond.Broadcast()
			return
		}
		if tb, ok := parseConfigTB(msg); ok {
			l.tb = tb
			return
		}
	}
	switch level {
	case "error", "fatal", "panic":
		if len(l.errs) < 8 && !contains(l.errs, msg) {
			l.errs = append(l.errs, msg)
		}
		if strings.Contains(msg, "Invalid data found when processing input") || strings.Contains(msg, "moov atom not found") ||
			strings.Contains(msg, "No such file") || strings.Contains(msg, "does not contain any stream") || strings.Contains(msg, "matches no streams") {
			l.noIn = true
		}
	}
	if msg != "" && level != "info" {
		l.last = append(l.last, msg)
		if len(l.last) > 3 {
			l.last = l.last[1:]
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// next returns the next frame's metadata, waiting for it; false once the
// log has ended and the queue is empty.
func (l *logReader) next() (frameMeta, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) == 0 && !l.closed {
		l.cond.Wait()
	}
	if len(l.queue) == 0 {
		return frameMeta{}, false
	}
	m := l.queue[0]
	l.queue = l.queue[1:]
	return m, true
}

func (l *logReader) timeBase() Rational {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tb
}

func (l *logReader) addError(s string) {
	l.mu.Lock()
	l.errs = append(l.errs, s)
	l.mu.Unlock()
}

func (l *logReader) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.errs...)
}

func (l *logReader) inputFailed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.noIn
}

func (l *logReader) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "; ")
}

// splitLog returns the level ("info", "error", …; "" when absent) and the
// message of one ffmpeg log line printed with -loglevel level+….
func splitLog(s string) (level, msg string) {
	s = strings.TrimSpace(s)
	for strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			break
		}
		tag := s[1:end]
		switch tag {
		case "quiet", "panic", "fatal", "error", "warning", "info", "verbose", "debug", "trace":
			level = tag
		}
		s = strings.TrimSpace(s[end+1:])
	}
	return level, s
}

// parseShowinfo parses the frame line of ffmpeg's showinfo filter (the
// message after the log prefixes): "n:   0 pts:  512 pts_time:0.04 …
// fmt:rgb24 sar:1/1 s:64x48 …".
func parseShowinfo(msg string) (frameMeta, bool) {
	if !strings.HasPrefix(msg, "n:") {
		return frameMeta{}, false
	}
	fields := strings.Fields(msg)
	var m frameMeta
	var haveN, havePTS bool
	for i := 0; i < len(fields); i++ {
		k, v, _ := strings.Cut(fields[i], ":")
		if v == "" && i+1 < len(fields) && !strings.Contains(fields[i+1], ":") {
			i++
			v = fields[i]
		}
		var err error
		switch k {
		case "n":
			m.n, err = strconv.ParseInt(v, 10, 64)
			haveN = err == nil
		case "pts":
			if v == "NOPTS" {
				return frameMeta{}, false
			}
			m.pts, err = strconv.ParseInt(v, 10, 64)
			havePTS = err == nil
		case "fmt":
			m.format = v
		case "s":
			w, h, ok := strings.Cut(v, "x")
			if !ok {
				return frameMeta{}, false
			}
			m.w, err = strconv.Atoi(w)
			if err == nil {
				m.h, err = strconv.Atoi(h)
			}
			if err != nil || m.w < 0 || m.h < 0 {
				return frameMeta{}, false
			}
		}
	}
	return m, haveN && havePTS && m.format != "" && m.w > 0 && m.h > 0
}

// parseConfigTB parses showinfo's "config in time_base: 1/25, frame_rate:
// 25/1" line.
func parseConfigTB(msg string) (Rational, bool) {
	rest, ok := strings.CutPrefix(msg, "config in time_base:")
	if !ok {
		return Rational{}, false
	}
	rest, _, _ = strings.Cut(rest, ",")
	r, err := parseRational(strings.TrimSpace(rest))
	if err != nil || r.Den <= 0 {
		return Rational{}, false
	}
	return r, true
}
