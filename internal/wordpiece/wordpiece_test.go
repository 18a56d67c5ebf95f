package wordpiece

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goclip/goclip/internal/fixtures"
)

// refTokens is tokens.json of the Chinese-CLIP fixtures.
type refTokens struct {
	ContextLength        int   `json:"context_length"`
	VocabSize            int   `json:"vocab_size"`
	CLS                  int32 `json:"cls"`
	SEP                  int32 `json:"sep"`
	PAD                  int32 `json:"pad"`
	UNK                  int32 `json:"unk"`
	MASK                 int32 `json:"mask"`
	DoLowerCase          bool  `json:"do_lower_case"`
	MaxInputCharsPerWord int   `json:"max_input_chars_per_word"`
	Texts                []struct {
		Index            int        `json:"index"`
		Text             string     `json:"text"`
		CleanText        string     `json:"clean_text"`
		ChineseSpaced    string     `json:"chinese_spaced"`
		WhitespaceTokens []string   `json:"whitespace_tokens"`
		LoweredStripped  []string   `json:"lowered_stripped"`
		BasicTokens      []string   `json:"basic_tokens"`
		Wordpieces       [][]string `json:"wordpieces"`
		Tokens           []string   `json:"tokens"`
		IDs              []int32    `json:"ids"`
		NTokens          int        `json:"n_tokens"`
		Truncated        bool       `json:"truncated"`
		TokenizeIDs      []int32    `json:"tokenize_ids"`
		SEPPosition      int        `json:"sep_position"`
		NAttended        int        `json:"n_attended"`
		PreprocessText   string     `json:"preprocess_text"`
		IDsPreprocessed  []int32    `json:"tokenize_ids_preprocessed"`
		HFNotes          []string   `json:"hf_bert_tokenizer_notes"`
	} `json:"texts"`
}

func loadRef(t *testing.T) (string, *refTokens, *Vocab) {
	t.Helper()
	dir := fixtures.CNDir(t)
	var ref refTokens
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &ref)
	v, err := LoadVocab(filepath.Join(dir, "tokenizer", "vocab.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, &ref, v
}

func TestVocabFixture(t *testing.T) {
	_, ref, v := loadRef(t)
	if v.Len() != ref.VocabSize {
		t.Errorf("vocab has %d tokens, want %d", v.Len(), ref.VocabSize)
	}
	got := []int32{v.CLS, v.SEP, v.PAD, v.UNK, v.MASK}
	want := []int32{ref.CLS, ref.SEP, ref.PAD, ref.UNK, ref.MASK}
	if !slices.Equal(got, want) {
		t.Errorf("special ids CLS SEP PAD UNK MASK = %v, want %v", got, want)
	}
}

func TestFixtureStages(t *testing.T) {
	dir, ref, v := loadRef(t)
	texts := fixtures.Texts(t, dir)
	if len(texts) != len(ref.Texts) {
		t.Fatalf("texts.json has %d texts, tokens.json %d", len(texts), len(ref.Texts))
	}
	o := CNCLIPOptions()
	o.Lowercase, o.StripAccents = ref.DoLowerCase, ref.DoLowerCase
	o.MaxInputCharsPerWord = ref.MaxInputCharsPerWord
	tk := New(v, o)
	for i, r := range ref.Texts {
		if r.Text != texts[i] {
			t.Errorf("text %d: tokens.json and texts.json disagree", i)
		}
		s := tk.BasicStages(r.Text)
		check := func(stage string, got, want any) {
			t.Helper()
			if !equalAny(got, want) {
				t.Errorf("text %d %q: %s = %q, want %q", i, r.Text, stage, got, want)
			}
		}
		check("clean_text", s.Clean, r.CleanText)
		check("chinese_spaced", s.ChineseSpaced, r.ChineseSpaced)
		check("whitespace_tokens", s.Words, r.WhitespaceTokens)
		check("lowered_stripped", s.Normalized, r.LoweredStripped)
		check("basic_tokens", s.Basic, r.BasicTokens)
		for j, w := range s.Basic {
			if j < len(r.Wordpieces) {
				check("wordpieces of "+w, tk.WordPieces(w), r.Wordpieces[j])
			}
		}
		check("tokens", tk.Tokenize(r.Text), r.Tokens)
		check("ids", tk.Encode(r.Text), r.IDs)
		row, trunc, err := tk.EncodeRow(r.Text, ref.ContextLength)
		if err != nil {
			t.Fatal(err)
		}
		check("tokenize_ids", row, r.TokenizeIDs)
		if trunc != r.Truncated {
			t.Errorf("text %d: truncated = %v, want %v", i, trunc, r.Truncated)
		}
		if row[r.SEPPosition] != v.SEP {
			t.Errorf("text %d: no [SEP] at %d", i, r.SEPPosition)
		}
		pre, _, _ := tk.EncodeRow(PreprocessText(r.Text), ref.ContextLength)
		check("preprocess_text", PreprocessText(r.Text), r.PreprocessText)
		check("tokenize_ids_preprocessed", pre, r.IDsPreprocessed)
	}
}

// TestFixtureHF checks the Hugging Face BertTokenizer variant: the same ids
// as cn_clip except for the texts the fixtures flag, where the documented
// differences (kept special tokens, 100-character words) are checked.
func TestFixtureHF(t *testing.T) {
	_, ref, v := loadRef(t)
	cn := New(v, CNCLIPOptions())
	hf := New(v, Options{Lowercase: true, StripAccents: true, ChineseChars: true, MaxInputCharsPerWord: 100, HF: true})
	for i, r := range ref.Texts {
		got, _, _ := hf.EncodeRow(r.Text, ref.ContextLength)
		if len(r.HFNotes) == 0 {
			if !slices.Equal(got, r.TokenizeIDs) {
				t.Errorf("text %d %q: HF ids %v, want %v", i, r.Text, got, r.TokenizeIDs)
			}
			continue
		}
		want, _, _ := cn.EncodeRow(r.Text, ref.ContextLength)
		if slices.Equal(got, want) {
			t.Errorf("text %d %q: flagged as differing in HF but got the cn_clip ids", i, r.Text)
		}
		for _, s := range []string{CLSToken, SEPToken, MASKToken} {
			if strings.Contains(r.Text, s) {
				id, _ := v.ID(s)
				if !slices.Contains(hf.Encode(r.Text), id) {
					t.Errorf("text %d: HF mode did not keep %s", i, s)
				}
			}
		}
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case string:
		return x == b.(string)
	case []string:
		y := b.([]string)
		return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y))
	case []int32:
		y := b.([]int32)
		return len(x) == len(y) && (len(x) == 0 || slices.Equal(x, y))
	}
	return false
}

const tinyVocab = "[PAD]\n[unused1]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\na\n##b\nσ\n##ς\n##σ\ni\n"

func TestBadVocab(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no CLS", "[PAD]\n[UNK]\n[SEP]\n", "[CLS]"},
		{"no SEP", "[PAD]\n[UNK]\n[CLS]\n", "[SEP]"},
		{"no UNK", "[PAD]\n[CLS]\n[SEP]\n", "[UNK]"},
		{"no PAD", "[UNK]\n[CLS]\n[SEP]\n", "[PAD]"},
		{"empty", "", "[CLS] [SEP] [PAD] [UNK]"},
		{"invalid utf-8", "[PAD]\n\xff\n", "UTF-8"},
	} {
		_, err := ParseVocab("bad/vocab.txt", []byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad/vocab.txt") {
			t.Errorf("%s: error %v, want one naming the file and %s", tc.name, err, tc.want)
		}
	}
}

func TestSynthetic(t *testing.T) {
	v, err := ParseVocab("tiny", []byte(tinyVocab))
	if err != nil {
		t.Fatal(err)
	}
	tk := New(v, CNCLIPOptions())
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"unaffable", []string{"un", "##aff", "##able"}},
		{"UNAFFABLE", []string{"un", "##aff", "##able"}},
		{"unaffablex", []string{UNKToken}},
		{"ab ab", []string{"a", "##b", "a", "##b"}},
		{"ΣΣ", []string{"σ", "##ς"}}, // final sigma
		{"Σ", []string{"σ"}},         // alone: no cased letter before
		{"İ", []string{"i"}},         // i + U+0307, then stripped
		{"[CLS]", []string{UNKToken, UNKToken, UNKToken}},
		{"", nil},
		{"\u0301", nil},
	} {
		got := tk.Tokenize(tc.in)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Tokenize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	hf := New(v, Options{Lowercase: true, StripAccents: true, ChineseChars: true, HF: true})
	if got := hf.Tokenize("a[CLS]ab"); !slices.Equal(got, []string{"a", CLSToken, "a", "##b"}) {
		t.Errorf("HF Tokenize kept special tokens wrong: %q", got)
	}
	if got := hf.Tokenize("[CLS][SEP]a [MASK][MASK"); !slices.Equal(got, []string{CLSToken, SEPToken, "a", MASKToken, UNKToken, UNKToken}) {
		t.Errorf("HF Tokenize of adjacent special tokens: %q", got)
	}
	if got := hf.Tokenize(strings.Repeat("[SEP]a", 20000)); len(got) != 40000 {
		t.Errorf("HF Tokenize of 20000 [SEP]a: %d tokens", len(got))
	}
	long := strings.Repeat("a", 201)
	if got := tk.Tokenize(long); !slices.Equal(got, []string{UNKToken}) {
		t.Errorf("201-character word: %q, want [UNK]", got)
	}
}

func TestPyLower(t *testing.T) {
	for in, want := range map[string]string{
		"ΣΣ.Σ":   "σσ.ς", // '.' is case-ignorable: the last Σ is final
		"ΣΣ.A":   "σσ.a", // followed (past the ignorable) by a cased letter
		"Σ.Σa":   "σ.σa",
		"ΣΟΦΟΣ,": "σοφος,",
		"İx":     "i\u0307x",
		"ABC":    "abc",
		"ＡＢ":     "ａｂ",
		"abc":    "abc",
	} {
		if got := PyLower(in); got != want {
			t.Errorf("PyLower(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTruncation(t *testing.T) {
	v, err := ParseVocab("tiny", []byte(tinyVocab))
	if err != nil {
		t.Fatal(err)
	}
	tk := New(v, CNCLIPOptions())
	for _, tc := range []struct {
		n, ctx int
		trunc  bool
	}{{3, 5, false}, {4, 5, true}, {0, 2, false}, {1, 2, true}, {10, 52, false}} {
		text := strings.TrimSpace(strings.Repeat("a ", tc.n))
		row, trunc, err := tk.EncodeRow(text, tc.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if trunc != tc.trunc || len(row) != tc.ctx || row[0] != v.CLS {
			t.Errorf("%d pieces in %d: row %v truncated %v", tc.n, tc.ctx, row, trunc)
		}
		kept := min(tc.n, tc.ctx-2)
		if row[kept+1] != v.SEP {
			t.Errorf("%d pieces in %d: row %v lacks [SEP] at %d", tc.n, tc.ctx, row, kept+1)
		}
	}
	if _, _, err := tk.EncodeRow("a", 1); err == nil {
		t.Error("context length 1 accepted")
	}
}

func FuzzWordPiece(f *testing.F) {
	for _, s := range []string{"unaffable", "一只猫的照片", "ΣΟΦΟΣ İ", "a\u0000b\ufffd\u200b", "[CLS] x[UNK]y", "\xff\xfe", strings.Repeat("ab", 150), "  \t\n", "e\u0301\u0302"} {
		f.Add(s)
	}
	v, err := ParseVocab("tiny", []byte(tinyVocab+"一\n只\n猫\n"))
	if err != nil {
		f.Fatal(err)
	}
	cn := New(v, CNCLIPOptions())
	hf := New(v, Options{Lowercase: true, StripAccents: true, ChineseChars: true, MaxInputCharsPerWord: 100, HF: true})
	f.Fuzz(func(t *testing.T, s string) {
		for _, tk := range []*Tokenizer{cn, hf} {
			for _, p := range tk.Tokenize(s) {
				if _, ok := v.ID(p); !ok {
					t.Fatalf("%q: piece %q not in the vocabulary", s, p)
				}
				if !utf8.ValidString(p) {
					t.Fatalf("%q: invalid UTF-8 piece %q", s, p)
				}
			}
			row, _, err := tk.EncodeRow(s, 8)
			if err != nil || len(row) != 8 || row[0] != v.CLS || !slices.Contains(row, v.SEP) {
				t.Fatalf("%q: bad row %v (%v)", s, row, err)
			}
		}
	})
}

func TestLoadHF(t *testing.T) {
	dir, ref, _ := loadRef(t)
	m := fixtures.ReadManifest(t, dir)
	for _, mod := range m.Models {
		hfDir := filepath.Join(dir, mod.Name, "hf")
		tk, maxLen, err := LoadHF(hfDir)
		if err != nil {
			t.Fatal(err)
		}
		if maxLen != ref.ContextLength {
			t.Errorf("%s: model_max_length %d, want %d", hfDir, maxLen, ref.ContextLength)
		}
		if !tk.Opts.HF || !tk.Opts.Lowercase || !tk.Opts.StripAccents || tk.Opts.MaxInputCharsPerWord != 100 {
			t.Errorf("%s: options %+v", hfDir, tk.Opts)
		}
	}
	if _, _, err := LoadHF(t.TempDir()); err == nil {
		t.Error("directory without vocab.txt accepted")
	}
}

func FuzzParseVocab(f *testing.F) {
	f.Add([]byte(tinyVocab))
	f.Add([]byte("[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n\u2028\n##\u2028\n"))
	f.Add([]byte("[PAD]\n[PAD]\n[UNK]\n[CLS]\n[SEP]"))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVocab("fuzz", b)
		if err != nil {
			return
		}
		for _, id := range []int32{v.CLS, v.SEP, v.PAD, v.UNK} {
			if id < 0 || int(id) >= v.Len() {
				t.Fatalf("special id %d outside %d tokens", id, v.Len())
			}
		}
		tk := New(v, CNCLIPOptions())
		for _, id := range tk.Encode(string(b)) {
			if id < 0 || int(id) >= v.Len() {
				t.Fatalf("id %d outside %d tokens", id, v.Len())
			}
		}
	})
}
