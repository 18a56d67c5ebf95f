package zeroshot

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"
)

// Placeholder is the marker a template's class name replaces.
const Placeholder = "{}"

//go:embed templates.txt
var builtinData []byte

// TemplateSet is one named list of prompt templates.
type TemplateSet struct {
	Names     []string // the set's name, then its aliases
	Templates []string
}

var (
	builtinOnce sync.Once
	builtinSets []TemplateSet
	builtinErr  error
)

func builtins() ([]TemplateSet, error) {
	builtinOnce.Do(func() {
		builtinSets, builtinErr = ParseTemplateSets(bytes.NewReader(builtinData), "templates.txt")
	})
	return builtinSets, builtinErr
}

// BuiltinSets returns the built-in template sets (the CLIP paper's 80
// ImageNet templates, CLIP's and CLIP_benchmark's per-dataset sets, and
// "simple" = "a photo of a {}.").
func BuiltinSets() []TemplateSet {
	sets, err := builtins()
	if err != nil {
		panic("zeroshot: built-in templates.txt is malformed: " + err.Error())
	}
	out := make([]TemplateSet, len(sets))
	for i, s := range sets {
		out[i] = TemplateSet{append([]string(nil), s.Names...), append([]string(nil), s.Templates...)}
	}
	return out
}

// TemplateNames lists every built-in set name and alias, sorted.
func TemplateNames() []string {
	var names []string
	for _, s := range BuiltinSets() {
		names = append(names, s.Names...)
	}
	sort.Strings(names)
	return names
}

// BuiltinTemplates returns the built-in set called name (case-insensitive;
// '-' and '_' are interchangeable).
func BuiltinTemplates(name string) ([]string, bool) {
	key := normName(name)
	for _, s := range BuiltinSets() {
		for _, n := range s.Names {
			if normName(n) == key {
				return s.Templates, true
			}
		}
	}
	return nil, false
}

func normName(s string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimSpace(s)), "-", "_")
}

// LoadTemplates resolves spec: a built-in set name, else a file of one
// template per line. An unknown name that is not a file gives an error
// listing the valid names.
func LoadTemplates(spec string) ([]string, error) {
	if t, ok := BuiltinTemplates(spec); ok {
		return t, nil
	}
	f, err := os.Open(spec)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("unknown template set %q: not a built-in name (%s) nor a file", spec, strings.Join(TemplateNames(), ", "))
		}
		return nil, fmt.Errorf("templates: %w", err)
	}
	defer f.Close()
	return ParseTemplates(f, spec)
}

// ParseTemplates reads one template per line from r (name is used in
// errors). Blank lines and lines starting with "#" are skipped; "{c}" (the
// CLIP_benchmark spelling) is accepted for "{}"; duplicates are an error.
func ParseTemplates(r io.Reader, name string) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var out []string
	seen := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(t) == "" || strings.HasPrefix(t, "#") {
			continue
		}
		t = strings.ReplaceAll(t, "{c}", Placeholder)
		if err := CheckTemplate(t); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		if prev, dup := seen[t]; dup {
			return nil, fmt.Errorf("%s:%d: template %q repeats line %d", name, line, t, prev)
		}
		seen[t] = line
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no templates", name)
	}
	return out, nil
}

// CheckTemplate reports whether t is a usable template: valid UTF-8 with
// at least one "{}".
func CheckTemplate(t string) error {
	if !utf8.ValidString(t) {
		return fmt.Errorf("template %q is not valid UTF-8", t)
	}
	if !strings.Contains(t, Placeholder) {
		return fmt.Errorf("template %q has no %s placeholder for the class name", t, Placeholder)
	}
	return nil
}

// Fill returns the prompt for label: every "{}" of template replaced by it
// (Python's str.format with one argument).
func Fill(template, label string) string {
	return strings.ReplaceAll(template, Placeholder, label)
}

// ParseTemplateSets reads the sectioned format of templates.txt: a line
// "[name alias ...]" starts a set, each following non-blank line that does
// not start with "#" is a template of it.
func ParseTemplateSets(r io.Reader, name string) ([]TemplateSet, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var sets []TemplateSet
	names := map[string]int{}
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.TrimSpace(t) == "" || strings.HasPrefix(t, "#"):
			continue
		case strings.HasPrefix(t, "["):
			if !strings.HasSuffix(t, "]") {
				return nil, fmt.Errorf("%s:%d: section header %q has no closing ]", name, line, t)
			}
			ns := strings.Fields(t[1 : len(t)-1])
			if len(ns) == 0 {
				return nil, fmt.Errorf("%s:%d: empty section name", name, line)
			}
			for _, n := range ns {
				if prev, dup := names[normName(n)]; dup {
					return nil, fmt.Errorf("%s:%d: set name %q already used on line %d", name, line, n, prev)
				}
				names[normName(n)] = line
			}
			if len(sets) > 0 && len(sets[len(sets)-1].Templates) == 0 {
				return nil, fmt.Errorf("%s:%d: set %q has no templates", name, line, sets[len(sets)-1].Names[0])
			}
			sets = append(sets, TemplateSet{Names: ns})
		default:
			if len(sets) == 0 {
				return nil, fmt.Errorf("%s:%d: template before the first [name] line", name, line)
			}
			if err := CheckTemplate(t); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			s := &sets[len(sets)-1]
			s.Templates = append(s.Templates, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(sets) > 0 && len(sets[len(sets)-1].Templates) == 0 {
		return nil, fmt.Errorf("%s: set %q has no templates", name, sets[len(sets)-1].Names[0])
	}
	return sets, nil
}

// WriteTemplateSets writes sets in the format ParseTemplateSets reads.
func WriteTemplateSets(w io.Writer, sets []TemplateSet) error {
	bw := bufio.NewWriter(w)
	for i, s := range sets {
		if i > 0 {
			bw.WriteByte('\n')
		}
		fmt.Fprintf(bw, "[%s]\n", strings.Join(s.Names, " "))
		for _, t := range s.Templates {
			if strings.ContainsAny(t, "\r\n") || strings.HasPrefix(t, "#") || strings.HasPrefix(t, "[") || strings.TrimSpace(t) == "" {
				return fmt.Errorf("template %q cannot be written as one line", t)
			}
			bw.WriteString(t)
			bw.WriteByte('\n')
		}
	}
	return bw.Flush()
}
