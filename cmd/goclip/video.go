package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/goclip/goclip/internal/video"
)

func init() {
	register("video", "video: zero-shot classify clips, index videos, search for moments (needs ffmpeg)", runVideo)
}

var videoCommands = []struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}{
	{"classify", "per-clip and per-window label probabilities from mean-pooled frame embeddings", runVideoClassify},
	{"index", "embed sampled frames of the videos in folders into the index database", runVideoIndex},
	{"search", "find the moments of indexed videos matching a text or an image", runVideoSearch},
	{"thumb", "write a JPEG of the frame at a time", runVideoThumb},
}

func videoUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: goclip video COMMAND [flags]\n\nCommands:")
	for _, c := range videoCommands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nFrames are decoded with ffmpeg (Debian package \"ffmpeg\"). Run \"goclip video COMMAND -h\" for flags.")
}

func runVideo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		videoUsage(stderr)
		return usagef("give a video command: classify, index, search or thumb")
	}
	switch args[0] {
	case "help", "-h", "--help":
		videoUsage(stderr)
		return nil
	}
	for _, c := range videoCommands {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	videoUsage(stderr)
	return usagef("unknown video command %q", args[0])
}

// samplingFlags are --fps and --frames.
type samplingFlags struct {
	fps    float64
	frames int
}

func (s *samplingFlags) register(fs *flag.FlagSet) {
	fs.Float64Var(&s.fps, "fps", video.DefaultFPS, "frames per second to sample")
	fs.IntVar(&s.frames, "frames", 0, "sample this many frames spread uniformly over each video instead of --fps")
}

func (s *samplingFlags) options(fs *flag.FlagSet) (video.Options, error) {
	fpsSet := false
	fs.Visit(func(f *flag.Flag) { fpsSet = fpsSet || f.Name == "fps" })
	switch {
	case s.frames < 0:
		return video.Options{}, usagef("--frames must be positive")
	case s.frames > 0 && fpsSet:
		return video.Options{}, usagef("give --fps or --frames, not both")
	case s.frames == 0 && (s.fps <= 0 || s.fps > 1000):
		return video.Options{}, usagef("--fps must be in (0, 1000], not %g", s.fps)
	}
	return video.Options{FPS: s.fps, Frames: s.frames}, nil
}

// secondsFlag is a time flag accepting 5, 2.5, 5s, 1m30s or 1:30.
type secondsFlag struct {
	v   float64
	set bool
}

func (s *secondsFlag) String() string {
	if !s.set {
		return ""
	}
	return fmt.Sprint(s.v)
}

func (s *secondsFlag) Set(v string) error {
	x, err := video.ParseSeconds(v)
	if err != nil {
		return err
	}
	s.v, s.set = x, true
	return nil
}

func runVideoClassify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("video classify", stderr)
	var mf modelFlags
	mf.register(fs)
	var z zsFlags
	z.register(fs, "simple")
	var sf samplingFlags
	sf.register(fs)
	labelList := fs.String("labels", "", `comma-separated labels, e.g. "cooking,skiing,a dog playing"`)
	labelFile := fs.String("labels-file", "", "file with one label per line")
	top := fs.Int("top", 5, "labels to show per clip and per window")
	var window, stride secondsFlag
	fs.Var(&window, "window", "also classify windows of this length (5s, 2.5, 1:00); none by default")
	fs.Var(&stride, "stride", "start a window every this long (default: the window length)")
	asJSON := fs.Bool("json", false, `one JSON object per video: {"video","frames","labels":[{"label","prob"}],"segments":[{"start","end","frames","labels"}]}`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: goclip video classify --model PATH (--labels L1,L2,... | --labels-file F) [--window 5s] [flags] VIDEO...")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("no videos: give one or more VIDEO paths")
	}
	if *top <= 0 {
		return usagef("--top must be positive, not %d", *top)
	}
	if window.set && window.v <= 0 {
		return usagef("--window must be positive")
	}
	if stride.set && (!window.set || stride.v <= 0) {
		return usagef("--stride needs a positive value and --window")
	}
	so, err := sf.options(fs)
	if err != nil {
		return err
	}
	labels, warnings, err := zsLabels(*labelList, *labelFile)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "goclip video classify: warning: %s\n", w)
	}
	templates, err := z.resolve(fs)
	if err != nil {
		return err
	}
	if _, err := video.FindTools(); err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return err
	}
	clf, _, err := z.build(ctx, m, &mf, labels, templates, stderr)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, path := range fs.Args() {
		e, err := video.Embed(ctx, m, path, so, mf.batch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, video.ErrNoFFmpeg) {
			return err
		}
		if e == nil {
			failed++
			fmt.Fprintf(stderr, "goclip video classify: %v\n", err)
			if *asJSON {
				if err := enc.Encode(struct {
					Video string `json:"video"`
					Error string `json:"error"`
				}{path, err.Error()}); err != nil {
					return err
				}
			}
			continue
		}
		c := video.Classify(e, clf, window.v, stride.v, *top)
		if err != nil {
			c.Warning = err.Error()
			fmt.Fprintf(stderr, "goclip video classify: warning: %v (classified the %d frames before)\n", err, len(e.Times))
		}
		if *asJSON {
			if err := enc.Encode(c); err != nil {
				return err
			}
		} else if err := printClassification(stdout, c, e); err != nil {
			return err
		}
		if !z.quiet {
			fmt.Fprintf(stderr, "goclip video classify: %s: %s\n", path, statsLine(e.Stats))
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d video(s) could not be read", failed, fs.NArg())
	}
	return nil
}

func printClassification(w io.Writer, c *video.Classification, e *video.Embedded) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%s (%d frames, %.1f s)\n", c.Video, c.Frames, e.Duration)
	for k, l := range c.Labels {
		fmt.Fprintf(tw, "  %d\t%s\t%.4f\n", k+1, l.Label, l.Prob)
	}
	for _, s := range c.Segments {
		var parts []string
		for _, l := range s.Labels {
			parts = append(parts, fmt.Sprintf("%s %.4f", l.Label, l.Prob))
		}
		fmt.Fprintf(tw, "  %s–%s\t%s\n", clock(float64(s.Start)), clock(float64(s.End)), strings.Join(parts, ", "))
	}
	return tw.Flush()
}

// clock formats seconds as m:ss.s (h:mm:ss.s from an hour).
func clock(t float64) string {
	d := time.Duration(t * float64(time.Second)).Round(100 * time.Millisecond)
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	s := (d % time.Minute).Seconds()
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%04.1f", h, m, s)
	}
	return fmt.Sprintf("%d:%04.1f", m, s)
}

func statsLine(s video.Stats) string {
	if s.Frames == 0 || s.Wall <= 0 {
		return "no frames"
	}
	per := func(d time.Duration) float64 { return d.Seconds() * 1000 / float64(s.Frames) }
	return fmt.Sprintf("%d frames in %.2fs (%.1f frames/s; per frame: waiting for ffmpeg %.1f ms, preprocess %.1f ms CPU, embed %.1f ms)",
		s.Frames, s.Wall.Seconds(), float64(s.Frames)/s.Wall.Seconds(), per(s.Decode), per(s.Preprocess), per(s.Embed))
}

func runVideoIndex(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("video index", stderr)
	var mf modelFlags
	mf.register(fs)
	var db string
	dbFlag(fs, &db)
	var sf samplingFlags
	sf.register(fs)
	quiet := fs.Bool("quiet", false, "no progress bar")
	verbose := fs.Bool("v", false, "list every failed video (default: the first 20)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("give one or more folders or video files to index")
	}
	so, err := sf.options(fs)
	if err != nil {
		return err
	}
	if _, err := video.FindTools(); err != nil {
		return err
	}
	m, st, id, err := openModelStore(&mf, db, false)
	if err != nil {
		return err
	}
	defer st.Close()
	bar := newBar(stderr, -1, "indexing videos", *quiet)
	opts := video.IndexOptions{Encoder: m, ModelID: id, Source: m.Path(), Store: st, Sampling: so, Batch: mf.batch}
	if bar != nil {
		opts.Progress = func(p string, done, total int) {
			bar.ChangeMax(total)
			bar.Describe(filepath.Base(p))
			bar.Set(done)
		}
	}
	sum, runErr := video.Index(ctx, fs.Args(), opts)
	if bar != nil {
		bar.Finish()
	}
	if sum != nil {
		fmt.Fprintf(stderr, "goclip video index: %d videos found in %v: %d new, %d re-indexed, %d unchanged, %d removed, %d failed (%d failed before, unchanged), %d truncated (frames before the damage kept)\n",
			sum.Found, sum.Elapsed.Round(time.Millisecond), sum.Added, sum.Updated, sum.Unchanged, sum.Removed, len(sum.Failed), sum.PrevFailed, len(sum.Truncated))
		if sum.Frames > 0 {
			fmt.Fprintf(stderr, "goclip video index: %s\n", statsLine(sum.Stats))
		}
		for i, f := range append(sum.Failed, sum.Truncated...) {
			if i == 20 && !*verbose {
				fmt.Fprintf(stderr, "  … and more (-v lists all)\n")
				break
			}
			fmt.Fprintf(stderr, "  %s\n", f.Err)
		}
	}
	return runErr
}

func runVideoSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("video search", stderr)
	var mf modelFlags
	mf.register(fs)
	var db string
	dbFlag(fs, &db)
	var images stringList
	fs.Var(&images, "image", "image file to search with: find the moment that looks like it (repeatable; added to the text terms with weight 1)")
	top := fs.Int("top", 10, "number of moments")
	asJSON := fs.Bool("json", false, `write one JSON array [{"video":…,"start":…,"end":…,"score":…},…], best first, times in seconds`)
	shot := fs.Float64("shot-threshold", video.DefaultShotThreshold, "a new shot starts where consecutive frames' cosine similarity drops below this; moments do not cross shots (0 disables)")
	margin := fs.Float64("merge", video.DefaultMargin, "adjacent frames scoring within this of a moment's best frame join the moment (negative: one frame per moment)")
	minScore := fs.Float64("min-score", 0, "leave out frames scoring below this cosine similarity")
	if err := parse(fs, args); err != nil {
		return err
	}
	qtext := strings.TrimSpace(strings.Join(fs.Args(), " "))
	if qtext == "" && len(images) == 0 {
		return usagef(`give a query text (e.g. "someone opens a door") or --image FILE`)
	}
	if *top < 1 {
		return usagef("--top must be at least 1")
	}
	if *shot < 0 || *shot > 1 {
		return usagef("--shot-threshold must be in [0, 1]")
	}
	o := video.MomentOptions{ShotThreshold: float32(*shot), NoShots: *shot == 0, Margin: float32(*margin), MinScore: float32(*minScore)}
	if *margin == 0 {
		o.Margin = 1e-9 // only equal scores; 0 would mean the default
	}
	m, st, id, err := loadForStore(&mf, db)
	if err != nil {
		return err
	}
	defer st.Close()
	lib := video.NewLibrary(st, id, nil)
	res, err := lib.Query(ctx, m, qtext, images, *top, o)
	if err != nil {
		return err
	}
	if *asJSON {
		if res == nil {
			res = []video.Moment{}
		}
		return json.NewEncoder(stdout).Encode(res)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "score\tstart\tend\tvideo")
	for _, r := range res {
		fmt.Fprintf(tw, "%.4f\t%s\t%s\t%s\n", r.Score, clock(float64(r.Start)), clock(float64(r.End)), r.Video)
	}
	return tw.Flush()
}

func runVideoThumb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("video thumb", stderr)
	var at secondsFlag
	fs.Var(&at, "at", "time of the frame (12.5, 12.5s, 0:12.5)")
	size := fs.Int("size", 320, "largest side in pixels (0: full size)")
	out := fs.String("o", "", "write the JPEG to this file (default stdout)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !at.set {
		return usagef("usage: goclip video thumb --at TIME [--size N] [-o FILE] VIDEO")
	}
	if *size < 0 {
		return usagef("--size must not be negative")
	}
	jpg, err := video.Thumbnail(ctx, fs.Arg(0), at.v, *size, nil)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = stdout.Write(jpg)
		return err
	}
	return os.WriteFile(*out, jpg, 0o644)
}
