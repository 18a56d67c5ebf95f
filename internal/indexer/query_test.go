package indexer

import (
	"math"
	"reflect"
	"testing"
)

func TestParseQuery(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Term
	}{
		{"a dog on the beach", []Term{{"a dog on the beach", 1}}},
		{`"beach" + "sunset" - "people"`, []Term{{"beach", 1}, {"sunset", 1}, {"people", -1}}},
		{`beach + sunset - people`, []Term{{"beach", 1}, {"sunset", 1}, {"people", -1}}},
		{`2*"beach" + 0.5 * sunset - 'people in a crowd'`, []Term{{"beach", 2}, {"sunset", 0.5}, {"people in a crowd", -1}}},
		{`- "people"`, []Term{{"people", -1}}},
		{`black-and-white photo`, []Term{{"black-and-white photo", 1}}},
		{`3 dogs`, []Term{{"3 dogs", 1}}},
		{`"it's" + dog`, []Term{{"it's", 1}, {"dog", 1}}},
	} {
		got, err := ParseQuery(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"", "   ", `"beach`, `beach +`, `beach "sunset"`, `2*`, `2* + x`, `""`, `beach * sunset`, `+ - x`} {
		if got, err := ParseQuery(bad); err == nil {
			t.Errorf("%q: no error, got %+v", bad, got)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"a dog", `"a" + 2*"b" - c`, `1e400*x`, `'`, `- -`, `NaN*x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		terms, err := ParseQuery(q)
		if err != nil {
			return
		}
		if len(terms) == 0 {
			t.Fatal("no terms and no error")
		}
		for _, tm := range terms {
			if tm.Text == "" || math.IsNaN(tm.Weight) || math.IsInf(tm.Weight, 0) {
				t.Fatalf("bad term %+v", tm)
			}
		}
	})
}

func TestCombine(t *testing.T) {
	v, err := Combine([][]float32{{2, 0}, {0, 5}}, []float64{1, 1})
	if err != nil || math.Abs(float64(v[0])-math.Sqrt2/2) > 1e-7 || math.Abs(float64(v[1])-math.Sqrt2/2) > 1e-7 {
		t.Errorf("Combine = %v, %v", v, err)
	}
	if _, err := Combine([][]float32{{1, 0}, {3, 0}}, []float64{1, -1}); err == nil {
		t.Error("cancelling terms: no error")
	}
	if _, err := Combine([][]float32{{1, 0}, {3}}, []float64{1, 1}); err == nil {
		t.Error("mismatched sizes: no error")
	}
}
