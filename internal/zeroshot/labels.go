package zeroshot

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// SplitLabels splits a comma-separated label list ("cat,dog, red car"),
// trimming spaces. Empty entries and repeats are dropped; each drop is
// described in warnings.
func SplitLabels(s string) (labels, warnings []string) {
	return dedupe(strings.Split(s, ","), func(i int) string { return fmt.Sprintf("entry %d", i+1) })
}

// ReadLabels reads one label per line from r (name is used in errors and
// warnings). Surrounding spaces are trimmed; blank lines are skipped and
// duplicates removed, each with a warning. A file with no labels, or with
// invalid UTF-8, is an error.
func ReadLabels(r io.Reader, name string) (labels, warnings []string, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var raw []string
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		if !utf8.ValidString(t) {
			return nil, nil, fmt.Errorf("%s:%d: label is not valid UTF-8", name, line)
		}
		raw = append(raw, t)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	labels, warnings = dedupe(raw, func(i int) string { return fmt.Sprintf("%s:%d", name, i+1) })
	if len(labels) == 0 {
		return nil, warnings, fmt.Errorf("%s: no labels", name)
	}
	return labels, warnings, nil
}

func dedupe(raw []string, where func(i int) string) (labels, warnings []string) {
	first := map[string]int{}
	blank := 0
	for i, l := range raw {
		l = strings.TrimSpace(strings.TrimPrefix(l, "\ufeff"))
		if l == "" {
			blank++
			continue
		}
		if j, dup := first[l]; dup {
			warnings = append(warnings, fmt.Sprintf("%s: duplicate label %q (first at %s) dropped", where(i), l, where(j)))
			continue
		}
		first[l] = i
		labels = append(labels, l)
	}
	if blank > 0 && len(raw) > 1 {
		warnings = append(warnings, fmt.Sprintf("%d blank label(s) skipped", blank))
	}
	return labels, warnings
}
