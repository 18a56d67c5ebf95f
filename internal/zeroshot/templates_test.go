package zeroshot

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestBuiltinSets(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		has  string
	}{
		{"imagenet", 80, "a bad photo of a {}."},
		{"ImageNet1k", 80, "itap of my {}."},
		{"simple", 1, "a photo of a {}."},
		{"cifar10", 18, "a photo of the big {}."},
		{"cifar100", 18, "a blurry photo of a {}."},
		{"food101", 1, "a photo of {}, a type of food."},
		{"fgvc-aircraft", 2, "a photo of the {}, a type of aircraft."},
		{"mnist", 1, `a photo of the number: "{}".`},
	} {
		got, ok := BuiltinTemplates(tc.name)
		if !ok {
			t.Errorf("%s: not found", tc.name)
			continue
		}
		if len(got) != tc.n {
			t.Errorf("%s: %d templates, want %d", tc.name, len(got), tc.n)
		}
		found := false
		for _, s := range got {
			found = found || s == tc.has
		}
		if !found {
			t.Errorf("%s: %q missing", tc.name, tc.has)
		}
		seen := map[string]bool{}
		for _, s := range got {
			if seen[s] {
				t.Errorf("%s: %q repeated", tc.name, s)
			}
			seen[s] = true
		}
	}
}

func TestTemplateRoundTrip(t *testing.T) {
	sets := BuiltinSets()
	var b bytes.Buffer
	if err := WriteTemplateSets(&b, sets); err != nil {
		t.Fatal(err)
	}
	back, err := ParseTemplateSets(&b, "roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sets, back) {
		t.Fatal("template sets do not round-trip")
	}
	// And a single set through the one-per-line format.
	im, _ := BuiltinTemplates("imagenet")
	one, err := ParseTemplates(strings.NewReader(strings.Join(im, "\n")+"\n"), "one")
	if err != nil || !reflect.DeepEqual(one, im) {
		t.Fatalf("imagenet through ParseTemplates: %v", err)
	}
}

func TestLoadTemplatesUnknown(t *testing.T) {
	_, err := LoadTemplates("no-such-set")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"no-such-set", "imagenet", "cifar10", "simple"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestParseTemplates(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"a {}.\n# comment\n\nthe {c}!\r\n", []string{"a {}.", "the {}!"}, ""},
		{"a {}.\nno placeholder\n", nil, "one:2"},
		{"a {}.\na {}.\n", nil, "repeats line 1"},
		{"\n# only comments\n", nil, "no templates"},
		{"\xff{}\n", nil, "UTF-8"},
	} {
		got, err := ParseTemplates(strings.NewReader(tc.in), "one")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %q, %v", tc.in, got, err)
		}
	}
}

func TestParseTemplateSetsErrors(t *testing.T) {
	for _, tc := range []struct{ in, err string }{
		{"a {}\n", "before the first"},
		{"[a\nx {}\n", "no closing"},
		{"[]\nx {}\n", "empty section"},
		{"[a]\n[b]\nx {}\n", "has no templates"},
		{"[a]\nx {}\n[b A]\ny {}\n", "already used"},
		{"[a]\n", "has no templates"},
		{"[a]\nnothing\n", "placeholder"},
	} {
		_, err := ParseTemplateSets(strings.NewReader(tc.in), "sets")
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestLabels(t *testing.T) {
	got, warn, err := ReadLabels(strings.NewReader("\ufeffcat\n\n dog \ncat\n\t\nred car\ndog\n"), "labels.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"cat", "dog", "red car"}) {
		t.Errorf("labels %q", got)
	}
	if len(warn) != 3 || !strings.Contains(warn[0], "labels.txt:4") || !strings.Contains(warn[0], `"cat"`) || !strings.Contains(warn[2], "2 blank") {
		t.Errorf("warnings %q", warn)
	}
	if _, _, err := ReadLabels(strings.NewReader("\n\n"), "empty.txt"); err == nil || !strings.Contains(err.Error(), "empty.txt") {
		t.Errorf("empty file: %v", err)
	}
	if _, _, err := ReadLabels(strings.NewReader("ok\n\xff\n"), "bad.txt"); err == nil || !strings.Contains(err.Error(), "bad.txt:2") {
		t.Errorf("bad UTF-8: %v", err)
	}
	got, warn = SplitLabels("cat, dog,,cat")
	if !reflect.DeepEqual(got, []string{"cat", "dog"}) || len(warn) != 2 {
		t.Errorf("SplitLabels: %q %q", got, warn)
	}
}

func FuzzParseTemplates(f *testing.F) {
	f.Add("a {}.\n# c\nthe {c}\n")
	f.Add("[x]\n{}\n")
	f.Add("\xff\n")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTemplates(strings.NewReader(s), "fuzz")
		if err == nil {
			for _, tpl := range got {
				if CheckTemplate(tpl) != nil {
					t.Fatalf("accepted bad template %q", tpl)
				}
			}
		}
	})
}

func FuzzParseTemplateSets(f *testing.F) {
	f.Add(string(builtinData))
	f.Add("[a b]\nx {}\n\n[c]\n{} y\n")
	f.Add("[a]\n")
	f.Fuzz(func(t *testing.T, s string) {
		sets, err := ParseTemplateSets(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := WriteTemplateSets(&b, sets); err != nil {
			return // e.g. a template that starts with "[" after a header
		}
		back, err := ParseTemplateSets(&b, "again")
		if err != nil || !reflect.DeepEqual(back, sets) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

func FuzzReadLabels(f *testing.F) {
	f.Add("cat\ndog\n\ncat\n")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, s string) {
		labels, _, err := ReadLabels(strings.NewReader(s), "fuzz")
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, l := range labels {
			if l == "" || seen[l] {
				t.Fatalf("label %q empty or repeated", l)
			}
			seen[l] = true
		}
	})
}

func FuzzDecodeCache(f *testing.F) {
	key := CacheKey("m", []string{"a"}, []string{"{}"})
	f.Add(encodeCache(key, [][]float32{{1, 2, 3}}))
	f.Add([]byte("GCZSW001"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := decodeCache(data, key, 1)
		if err == nil && (len(w) != 1 || len(w[0]) == 0) {
			t.Fatalf("decoded %d rows", len(w))
		}
	})
}
