package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// findChromium returns the path of a Chromium/Chrome binary or "".
func findChromium() string {
	if p := os.Getenv("GOCLIP_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artifactDir is where the browser test writes its screenshots:
// $GOCLIP_ARTIFACTS when set, else a temporary directory.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("GOCLIP_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// TestWebUIInBrowser drives the embedded web page in headless Chromium
// against a server on 127.0.0.1: a text query shows thumbnails with
// scores, an uploaded image finds itself first, clicking a result
// searches for similar images. Screenshots are written as artifacts.
func TestWebUIInBrowser(t *testing.T) {
	bin := findChromium()
	if bin == "" {
		t.Skip("no Chromium found: install the Debian package chromium (apt-get install -y chromium) to run the browser test")
	}
	if raceEnabled {
		t.Skip("browser test skipped under -race (slow instrumented model)")
	}
	idx := testIndex(t)
	_, ts := newTestServer(t, nil)
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
	if err := chromedp.Do(ctx); err != nil { // start the browser and open the tab
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
	// waitResults waits for a finished search whose label contains want
	// and whose thumbnails have all loaded.
	waitResults := func(want string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`(() => {
			const b = document.body.dataset;
			if (b.state !== "done" || !(b.query || "").includes(%q)) return false;
			const imgs = [...document.querySelectorAll("#results .result img")];
			return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
		})()`, want)
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
			return err
		})
	}
	type card struct {
		Path  string `json:"path"`
		Score string `json:"score"`
	}
	readCards := func() []card {
		t.Helper()
		cards, err := chromedp.Run(ctx, chromedp.Evaluate[[]card](`[...document.querySelectorAll("#results .result")].map(c => ({path: c.dataset.path, score: c.querySelector(".score").textContent}))`))
		if err != nil {
			t.Fatalf("reading the results: %v", err)
		}
		return cards
	}
	readStatus := func() string {
		s, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
		return s
	}

	// 1. Text search.
	query := "a red square"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.URL),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), query),
		chromedp.Click(chromedp.ID("go")),
		waitResults(query),
		shot("webui-text-search.png"),
	); err != nil {
		t.Fatalf("text search in the browser: %v", err)
	}
	cards, status := readCards(), readStatus()
	want, _ := idx.Search(context.Background(), mustEmbedText(t, query), 24)
	if len(cards) != len(want) {
		t.Fatalf("text search shows %d results, want %d (status %q)", len(cards), len(want), status)
	}
	for i := range cards {
		if cards[i].Score != fmt.Sprintf("%.4f", want[i].Score) {
			t.Errorf("result %d shows %v, want %v", i, cards[i], want[i])
		}
	}
	t.Logf("text search: %s; first %v", status, cards[0])

	// 2. Upload an indexed image: it finds itself first, score 1.
	up := idx.paths[len(idx.paths)/2]
	if err := chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{up}),
		waitResults(filepath.Base(up)),
		shot("webui-image-search.png"),
	); err != nil {
		t.Fatalf("image upload in the browser: %v", err)
	}
	cards, status = readCards(), readStatus()
	if len(cards) == 0 || cards[0].Path != up || !strings.HasPrefix(cards[0].Score, "1.0000") && !strings.HasPrefix(cards[0].Score, "0.9999") {
		t.Errorf("uploading %s: first result %v, want the image itself with score 1", up, cards[:min(1, len(cards))])
	}
	t.Logf("image search: %s", status)

	// 3. Click a result: search for images similar to it.
	second := cards[1].Path
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#results .result:nth-child(2)")),
		waitResults("images similar to"),
		shot("webui-similar.png"),
	); err != nil {
		t.Fatalf("clicking a result: %v", err)
	}
	cards, status = readCards(), readStatus()
	if len(cards) == 0 || cards[0].Path != second {
		t.Errorf("similar to %s: first result %v, want the clicked image", second, cards[:min(1, len(cards))])
	}
	t.Logf("similar search: %s", status)
	mu.Lock()
	defer mu.Unlock()
	for _, e := range jsErrors {
		t.Errorf("JavaScript error: %s", e)
	}
}

func describe(o *runtime.RemoteObject) string {
	if o == nil {
		return ""
	}
	return o.Description
}

func mustEmbedText(t *testing.T, text string) []float32 {
	t.Helper()
	m, _ := testModel(t)
	e, err := m.EncodeTexts(context.Background(), []string{text})
	if err != nil {
		t.Fatal(err)
	}
	return normalizeAll(e)[0]
}
