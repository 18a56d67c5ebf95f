package evaluate

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Progress is a progress bar on a terminal; a nil *Progress does nothing.
type Progress struct {
	bar *progressbar.ProgressBar
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// NewProgress returns a bar counting to total with desc and the unit
// (e.g. "img") in its rate, drawn on w; it returns nil (no bar) when
// enabled is false, total ≤ 0 or w is not a terminal.
func NewProgress(w io.Writer, total int, desc, unit string, enabled bool) *Progress {
	if !enabled || total <= 0 || !IsTerminal(w) {
		return nil
	}
	return &Progress{progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// Set moves the bar to done.
func (p *Progress) Set(done int) {
	if p != nil {
		p.bar.Set(done)
	}
}

// Func returns a func(done, total) that moves the bar (for callbacks).
func (p *Progress) Func() func(done, total int) {
	return func(done, _ int) { p.Set(done) }
}

// Finish completes and clears the bar.
func (p *Progress) Finish() {
	if p != nil {
		p.bar.Finish()
	}
}
