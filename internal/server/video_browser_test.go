package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/goclip/goclip/internal/video"
)

// makeTestVideo encodes a 2-second 160×120 test pattern (VP8 WebM, which
// every Chromium build plays) into dir, skipping the test without ffmpeg.
func makeTestVideo(t *testing.T, dir string) string {
	t.Helper()
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("no ffmpeg: install the Debian package ffmpeg (apt-get install -y ffmpeg) to run the video browser test")
	}
	p := filepath.Join(dir, "pattern.webm")
	cmd := exec.Command(ff, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=duration=2:size=160x120:rate=10",
		"-c:v", "libvpx", "-b:v", "300k", "-pix_fmt", "yuv420p", p)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("ffmpeg cannot make a VP8 WebM test video (%v): %s", err, out)
	}
	return p
}

// TestVideoUIInBrowser drives the web page in headless Chromium against a
// server whose VideoSearcher returns one moment of a generated 2-second
// video: a text search shows the moment's frame with its name, span and
// score, and clicking it opens the player at the moment's start.
func TestVideoUIInBrowser(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no Chromium found: install the Debian package chromium (apt-get install -y chromium) to run the browser test")
	}
	if raceEnabled {
		t.Skip("browser test skipped under -race (slow instrumented model)")
	}
	vid := makeTestVideo(t, t.TempDir())
	const start, end = 1.0, 1.5
	fv := &fakeVideos{
		moments: []Moment{{Video: vid, Start: start, End: end, Score: 0.2875, Peak: 1.2}},
		files:   map[string]bool{vid: true},
		thumb: func(ctx context.Context, path string, t float64) ([]byte, error) {
			return video.Thumbnail(ctx, path, t, 320, nil)
		},
	}
	_, ts := newTestServer(t, func(c *Config) { c.Videos = fv })
	art := artifactDir(t)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	var mu sync.Mutex
	var jsErrors []string
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			mu.Lock()
			jsErrors = append(jsErrors, fmt.Sprintf("%s %s", e.ExceptionDetails.Text, describe(e.ExceptionDetails.Exception)))
			mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				mu.Lock()
				jsErrors = append(jsErrors, "console.error")
				mu.Unlock()
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			p := filepath.Join(art, name)
			if err := os.WriteFile(p, buf, 0o644); err != nil {
				return err
			}
			t.Logf("screenshot: %s", p)
			return nil
		})
	}
	poll := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
			return err
		})
	}

	// 1. A text search shows the Videos section with the moment's frame.
	query := "a test pattern"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), query),
		chromedp.Click(chromedp.ID("go")),
		poll(`(() => {
			if (document.body.dataset.state !== "done" || document.getElementById("videos").hidden) return false;
			const imgs = [...document.querySelectorAll("#moments .moment img")];
			return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
		})()`),
		shot("webui-video-search.png"),
	); err != nil {
		t.Fatalf("video search in the browser: %v", err)
	}
	type card struct {
		Label string `json:"label"`
		Video string `json:"video"`
		Width int    `json:"width"`
	}
	cards, err := chromedp.Run(ctx, chromedp.Evaluate[[]card](`[...document.querySelectorAll("#moments .moment")].map(c => ({label: c.querySelector(".label").textContent, video: c.dataset.video, width: c.querySelector("img").naturalWidth}))`))
	if err != nil {
		t.Fatalf("reading the moments: %v", err)
	}
	wantLabel := "pattern.webm · 0:01–0:02 · 0.2875"
	if len(cards) != 1 || cards[0].Video != vid || cards[0].Label != wantLabel || cards[0].Width != 160 {
		t.Fatalf("moments shown: %+v, want one for %s labelled %q with a 160-px frame", cards, vid, wantLabel)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
	if !strings.Contains(status, "and 1 video moment for") {
		t.Errorf("status %q does not count the video moment", status)
	}

	// 2. Clicking the moment opens the player at its start.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#moments .moment")),
		poll(`document.getElementById("player").open && document.getElementById("player").dataset.state === "ready"`),
		shot("webui-video-player.png"),
	); err != nil {
		st, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const v = document.getElementById("video"); return JSON.stringify({state: document.getElementById("player").dataset.state, t: v.currentTime, rs: v.readyState, err: v.error && v.error.message}); })()`))
		t.Fatalf("opening the player: %v (player %s)", err, st)
	}
	type player struct {
		Open     bool    `json:"open"`
		Time     float64 `json:"time"`
		Duration float64 `json:"duration"`
		Src      string  `json:"src"`
		Started  string  `json:"started"`
	}
	p, err := chromedp.Run(ctx, chromedp.Evaluate[player](`(() => { const v = document.getElementById("video"); return {open: document.getElementById("player").open, time: v.currentTime, duration: v.duration, src: v.currentSrc, started: document.getElementById("player").dataset.startTime}; })()`))
	if err != nil {
		t.Fatal(err)
	}
	began, _ := strconv.ParseFloat(p.Started, 64)
	if !p.Open || began < start || began > end || p.Time < start || p.Duration < 1.9 || !strings.Contains(p.Src, "/v1/video/file?path=") {
		t.Errorf("player %+v: want it open on /v1/video/file of the 2-s video, starting at currentTime in [%v, %v]", p, start, end)
	}
	t.Logf("player: %+v", p)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range jsErrors {
		t.Errorf("JavaScript error: %s", e)
	}
}
