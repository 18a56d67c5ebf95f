package tokenizer

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/goclip/goclip/internal/fixtures"
)

type tokensFile struct {
	ContextLength int  `json:"context_length"`
	SOT           int  `json:"sot"`
	EOT           int  `json:"eot"`
	Pad           int  `json:"pad"`
	Truncate      bool `json:"truncate"`
	Texts         []struct {
		Index       int      `json:"index"`
		Text        string   `json:"text"`
		FtfyFixText string   `json:"ftfy_fix_text"`
		BasicClean  string   `json:"basic_clean"`
		Cleaned     string   `json:"cleaned"`
		Pieces      []string `json:"pieces"`
		BPETokens   []string `json:"bpe_tokens"`
		BPEIDs      []int    `json:"bpe_ids"`
		NBPE        int      `json:"n_bpe"`
		Truncated   bool     `json:"truncated"`
		EOTPosition int      `json:"eot_position"`
		Decoded     string   `json:"decoded"`
		TokenizeIDs []int32  `json:"tokenize_ids"`
	} `json:"texts"`
}

func readTokens(t testing.TB) (string, *tokensFile) {
	dir := fixtures.Dir(t)
	var tf tokensFile
	fixtures.ReadJSON(t, filepath.Join(dir, "tokens.json"), &tf)
	if len(tf.Texts) == 0 {
		t.Fatal("tokens.json has no texts")
	}
	return dir, &tf
}

var (
	loadOnce sync.Once
	loaded   map[string]*Tokenizer
	loadErr  error
)

// loaders returns one tokenizer per supported vocabulary format, built from
// the fixture files (tokenizer.json is written to a temp dir).
func loaders(t *testing.T) map[string]*Tokenizer {
	t.Helper()
	dir := fixtures.Dir(t)
	loadOnce.Do(func() {
		loaded = map[string]*Tokenizer{}
		add := func(name, path string) {
			if loadErr != nil {
				return
			}
			tk, err := Load(path)
			if err != nil {
				loadErr = err
				return
			}
			loaded[name] = tk
		}
		add("openai-gz", filepath.Join(dir, "tokenizer", OpenAIVocabFile))
		add("hf-vocab", filepath.Join(dir, "tokenizer", HFVocabFile))
		add("hf-merges", filepath.Join(fixtures.HFDir(t, dir), HFMergesFile))
		add("hf-dir", fixtures.HFDir(t, dir))
		tmp, err := os.MkdirTemp("", "goclip-tokenizer-test")
		if err != nil {
			loadErr = err
			return
		}
		defer os.RemoveAll(tmp)
		for _, pairs := range []bool{false, true} {
			p, err := writeTokenizerJSON(filepath.Join(dir, "tokenizer"), tmp, pairs)
			if err != nil {
				loadErr = err
				return
			}
			name := "tokenizer.json-strings"
			if pairs {
				name = "tokenizer.json-pairs"
			}
			add(name, p)
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

// writeTokenizerJSON converts vocab.json + merges.txt into a Hugging Face
// tokenizer.json; the special tokens are moved to added_tokens to exercise
// that path.
func writeTokenizerJSON(src, dstDir string, pairMerges bool) (string, error) {
	vb, err := os.ReadFile(filepath.Join(src, HFVocabFile))
	if err != nil {
		return "", err
	}
	var vocab map[string]int
	if err := json.Unmarshal(vb, &vocab); err != nil {
		return "", err
	}
	mb, err := os.ReadFile(filepath.Join(src, HFMergesFile))
	if err != nil {
		return "", err
	}
	var merges []any
	for i, ln := range strings.Split(string(mb), "\n") {
		if i == 0 || ln == "" {
			continue
		}
		if pairMerges {
			a, b, _ := strings.Cut(ln, " ")
			merges = append(merges, []string{a, b})
		} else {
			merges = append(merges, ln)
		}
	}
	type added struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	}
	var specials []added
	for _, s := range []string{sotText, eotText} {
		specials = append(specials, added{vocab[s], s, true})
		delete(vocab, s)
	}
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": specials,
		"model": map[string]any{
			"type":                      "BPE",
			"end_of_word_suffix":        "</w>",
			"continuing_subword_prefix": "",
			"vocab":                     vocab,
			"merges":                    merges,
		},
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	sub := "strings"
	if pairMerges {
		sub = "pairs"
	}
	d := filepath.Join(dstDir, sub)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(d, HFTokenizerFile)
	return p, os.WriteFile(p, out, 0o644)
}

func TestCleaningStages(t *testing.T) {
	_, tf := readTokens(t)
	for _, c := range tf.Texts {
		if got := FixText(c.Text); got != c.FtfyFixText {
			t.Errorf("text %d FixText(%q) = %q, want %q", c.Index, c.Text, got, c.FtfyFixText)
		}
		if got := BasicClean(c.Text); got != c.BasicClean {
			t.Errorf("text %d BasicClean = %q, want %q", c.Index, got, c.BasicClean)
		}
		if got := Clean(c.Text); got != c.Cleaned {
			t.Errorf("text %d Clean = %q, want %q", c.Index, got, c.Cleaned)
		}
		got := Pieces(c.Cleaned)
		if len(got) == 0 && len(c.Pieces) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, c.Pieces) {
			t.Errorf("text %d Pieces = %q, want %q", c.Index, got, c.Pieces)
		}
	}
}

func TestFixtureTokens(t *testing.T) {
	_, tf := readTokens(t)
	for name, tk := range loaders(t) {
		t.Run(name, func(t *testing.T) {
			if tk.SOT() != tf.SOT || tk.EOT() != tf.EOT {
				t.Fatalf("SOT/EOT = %d/%d, want %d/%d", tk.SOT(), tk.EOT(), tf.SOT, tf.EOT)
			}
			for _, c := range tf.Texts {
				var toks []string
				for _, p := range Pieces(Clean(c.Text)) {
					toks = append(toks, tk.BPE(p)...)
				}
				if len(toks) != len(c.BPETokens) || (len(toks) > 0 && !reflect.DeepEqual(toks, c.BPETokens)) {
					t.Errorf("text %d bpe tokens = %q, want %q", c.Index, toks, c.BPETokens)
				}
				ids := tk.Encode(c.Text)
				if len(ids) != len(c.BPEIDs) || (len(ids) > 0 && !reflect.DeepEqual(ids, c.BPEIDs)) {
					t.Errorf("text %d Encode = %v, want %v", c.Index, ids, c.BPEIDs)
				}
				if len(ids) != c.NBPE {
					t.Errorf("text %d: %d BPE ids, want %d", c.Index, len(ids), c.NBPE)
				}
				row, trunc := tk.Tokenize(c.Text, tf.ContextLength)
				if !reflect.DeepEqual(row, c.TokenizeIDs) {
					t.Errorf("text %d Tokenize = %v, want %v", c.Index, row, c.TokenizeIDs)
				}
				if trunc != c.Truncated {
					t.Errorf("text %d truncated = %v, want %v", c.Index, trunc, c.Truncated)
				}
				if p := argmax(row); p != c.EOTPosition {
					t.Errorf("text %d EOT position = %d, want %d", c.Index, p, c.EOTPosition)
				}
				if got := tk.Decode(c.BPEIDs); got != c.Decoded {
					t.Errorf("text %d Decode = %q, want %q", c.Index, got, c.Decoded)
				}
			}
		})
	}
}

func argmax(row []int32) int {
	best := 0
	for i, v := range row {
		if v > row[best] {
			best = i
		}
	}
	return best
}

func TestLoadersAgree(t *testing.T) {
	ls := loaders(t)
	ref := ls["openai-gz"]
	for name, tk := range ls {
		if tk.VocabSize() != ref.VocabSize() {
			t.Errorf("%s: VocabSize %d, want %d", name, tk.VocabSize(), ref.VocabSize())
		}
		if !reflect.DeepEqual(tk.tokens, ref.tokens) {
			t.Errorf("%s: id -> token table differs from the OpenAI file's", name)
		}
		if !reflect.DeepEqual(tk.merges, ref.merges) {
			t.Errorf("%s: merge table differs from the OpenAI file's", name)
		}
	}
}

func TestEmptyAndShortContext(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	for _, s := range []string{"", " \t\n ", "\x00\x01"} {
		row, trunc := tk.Tokenize(s, DefaultContextLength)
		want := make([]int32, DefaultContextLength)
		want[0], want[1] = int32(tk.SOT()), int32(tk.EOT())
		if trunc || !reflect.DeepEqual(row, want) {
			t.Errorf("Tokenize(%q) = %v, %v; want %v, false", s, row, trunc, want)
		}
	}
	row, trunc := tk.Tokenize("a photo of a cat", 3)
	if want := []int32{int32(tk.SOT()), 320, int32(tk.EOT())}; !trunc || !reflect.DeepEqual(row, want) {
		t.Errorf("context 3: %v %v, want %v true", row, trunc, want)
	}
	row, _ = tk.Tokenize("cat", 1)
	if want := []int32{int32(tk.EOT())}; !reflect.DeepEqual(row, want) {
		t.Errorf("context 1: %v, want %v", row, want)
	}
	if row, _ := tk.Tokenize("cat", 0); len(row) != 0 {
		t.Errorf("context 0: %v, want empty", row)
	}
}

func TestTokenizeBatch(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	_, tf := readTokens(t)
	var texts []string
	var want []int32
	for _, c := range tf.Texts {
		texts = append(texts, c.Text)
		want = append(want, c.TokenizeIDs...)
	}
	got, trunc := tk.TokenizeBatch(texts, tf.ContextLength)
	if !reflect.DeepEqual(got, want) {
		t.Error("TokenizeBatch differs from the per-text rows")
	}
	for i, c := range tf.Texts {
		if trunc[i] != c.Truncated {
			t.Errorf("row %d truncated = %v", i, trunc[i])
		}
	}
}

func TestFind(t *testing.T) {
	dir := fixtures.Dir(t)
	t.Setenv(EnvTokenizer, "")
	cases := []struct {
		dir, want string
	}{
		{filepath.Join(dir, "tokenizer"), filepath.Join(dir, "tokenizer", OpenAIVocabFile)},
		{fixtures.HFDir(t, dir), filepath.Join(fixtures.HFDir(t, dir), HFVocabFile)},
	}
	for _, c := range cases {
		got, err := Find(c.dir)
		if err != nil || got != c.want {
			t.Errorf("Find(%s) = %q, %v; want %q", c.dir, got, err, c.want)
		}
	}
	empty := t.TempDir()
	_, err := Find(empty)
	if err == nil || !strings.Contains(err.Error(), "goclip pull") || !strings.Contains(err.Error(), EnvTokenizer) ||
		!strings.Contains(err.Error(), "--tokenizer") {
		t.Errorf("Find(empty) error = %v; want a hint about goclip pull, --tokenizer and $%s", err, EnvTokenizer)
	}
	t.Setenv(EnvTokenizer, filepath.Join(dir, "tokenizer"))
	if got, err := Find(empty); err != nil || got != filepath.Join(dir, "tokenizer", OpenAIVocabFile) {
		t.Errorf("Find with $%s = %q, %v", EnvTokenizer, got, err)
	}
	t.Setenv(EnvTokenizer, filepath.Join(empty, "nope"))
	if _, err := Find(empty); err == nil {
		t.Error("Find with a missing $GOCLIP_TOKENIZER succeeded")
	}
}

func TestLoadErrors(t *testing.T) {
	d := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(d, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		"missing":        filepath.Join(d, "nope.gz"),
		"not gzip":       write("bad.txt.gz", "plain text"),
		"empty dir":      t.TempDir(),
		"unknown":        write("vocab.bin", "x"),
		"bad json":       write("tokenizer.json", "{"),
		"vocab no merge": write("vocab.json", `{"a": 0}`),
		"not bpe":        write("other.json", `{"model": {"type": "WordPiece", "vocab": {"a": 0}}}`),
		"no merges":      write("short.txt", "header only"),
	}
	for name, p := range cases {
		if _, err := Load(p); err == nil {
			t.Errorf("%s: Load(%s) succeeded", name, p)
		}
	}
}

func TestPyLower(t *testing.T) {
	cases := map[string]string{
		"İSTANBUL":          "i\u0307stanbul",
		"ΟΔΟΣ":              "οδος",
		"ΟΔΟΣ.":             "οδος.",
		"Σ":                 "σ",
		"ΣΑ":                "σα",
		"Α'Σ'":              "α'ς'",
		"STRASSE ẞ":         "strasse ß",
		"ǅ":                 "ǆ",
		"ABC":               "abc",
		"":                  "",
		"Σ\u0301Α ΑΣ\u0301": "σ\u0301α ας\u0301",
	}
	for in, want := range cases {
		if got := PyLower(in); got != want {
			t.Errorf("PyLower(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHTMLUnescape(t *testing.T) {
	cases := map[string]string{
		"&amp;":           "&",
		"&amp":            "&",
		"&ampx":           "&x",
		"&amp;amp;":       "&amp;",
		"&lt;b&gt;":       "<b>",
		"&#39;":           "'",
		"&#x263A;":        "\u263a",
		"&#X263a":         "\u263a",
		"&#x;":            "&#x;",
		"&#;":             "&#;",
		"&#0;":            "\ufffd",
		"&#128;":          "\u20ac",
		"&#x81;":          "\u0081",
		"&#13;":           "\r",
		"&#1;":            "",
		"&#xFFFF;":        "",
		"&#xD800;":        "\ufffd",
		"&#99999999999;":  "\ufffd",
		"&#x110000;":      "\ufffd",
		"&notit;":         "¬it;",
		"&notin;":         "∉",
		"&semi;":          ";",
		"&nosuch;":        "&nosuch;",
		"& ;":             "& ;",
		"&":               "&",
		"a&b":             "a&b",
		"&NotEqualTilde;": "≂̸",
		"&copy-x":         "©-x",
	}
	for in, want := range cases {
		if got := HTMLUnescape(in); got != want {
			t.Errorf("HTMLUnescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFixTextCases(t *testing.T) {
	cases := map[string]string{
		"&amp;\n<html>\n&amp;":   "&\n<html>\n&amp;",
		"&lt;3":                  "<3",
		"<em>&lt;3</em>":         "<em>&lt;3</em>",
		"&EACUTE;":               "É",
		"&SZLIG;":                "SS",
		"&GTCC;":                 "&GTCC;",
		"&gtcc;":                 "\u2aa7",
		"&AMP;":                  "&",
		"\x1b[36;44mblue\x1b[0m": "blue",
		"a\rb\r\nc\u2028d":       "a\nb\nc\nd",
		"\ufb02u\ufb03e\ufb06":   "fluffiest",
		"ＬＯＵＤ　ＮＯＩＳＥＳ":            "LOUD NOISES",
		"price \u0080":           "price €",
		"schÃ¶n":                 "schön",
		"This â€” is":            "This — is",
		"Ã¢â‚¬â„¢":               "'",
		"café":                   "café",
		"\ufeffhi\u206a":         "hi",
		"ok\xff":                 "ok\ufffd",
	}
	for in, want := range cases {
		if got := FixText(in); got != want {
			t.Errorf("FixText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDecodeInvalidUTF8(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	// Byte symbols: 0xE2 0x82 then 'x</w>' -> one U+FFFD for the truncated
	// 3-byte sequence, as Python's decode(errors="replace").
	ids := []int{int(tk.byteID[0xe2]), int(tk.byteID[0x82]), int(tk.byteEnd['x'])}
	if got, want := tk.Decode(ids), "\ufffdx "; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	ids = []int{int(tk.byteID[0xff]), int(tk.byteEnd[0x80])}
	if got, want := tk.Decode(ids), "\ufffd\ufffd "; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	if got := tk.Decode([]int{-1, 1 << 30}); got != "" {
		t.Errorf("Decode(out of range) = %q", got)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	_, tf := readTokens(t)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, c := range tf.Texts {
				if ids := tk.Encode(c.Text); len(ids) != c.NBPE {
					t.Errorf("text %d: %d ids, want %d", c.Index, len(ids), c.NBPE)
				}
			}
		}()
	}
	wg.Wait()
}

func TestLoadSpeed(t *testing.T) {
	dir := fixtures.Dir(t)
	start := time.Now()
	if _, err := Load(filepath.Join(dir, "tokenizer", OpenAIVocabFile)); err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	t.Logf("Load(%s): %v", OpenAIVocabFile, d)
	if d > 30*time.Second { // a hang guard only; speed is BenchmarkLoadGZ's job (~40 ms)
		t.Errorf("Load took %v", d)
	}
}

func BenchmarkLoadGZ(b *testing.B) {
	dir := fixtures.Dir(b)
	for i := 0; i < b.N; i++ {
		if _, err := Load(filepath.Join(dir, "tokenizer", OpenAIVocabFile)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTokenize(b *testing.B) {
	dir, tf := readTokens(b)
	tk, err := Load(filepath.Join(dir, "tokenizer", OpenAIVocabFile))
	if err != nil {
		b.Fatal(err)
	}
	var n int
	for _, c := range tf.Texts {
		n += len(c.Text)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, c := range tf.Texts {
			tk.Tokenize(c.Text, DefaultContextLength)
		}
	}
}

var fuzzTok struct {
	once sync.Once
	tk   *Tokenizer
	err  error
}

func FuzzTokenize(f *testing.F) {
	d, ok := fixtures.Lookup()
	if !ok {
		f.Skip("reference fixtures not found (need the BPE vocabulary)")
	}
	fuzzTok.once.Do(func() {
		fuzzTok.tk, fuzzTok.err = Load(filepath.Join(d, "tokenizer", OpenAIVocabFile))
	})
	if fuzzTok.err != nil {
		f.Fatal(fuzzTok.err)
	}
	tk := fuzzTok.tk
	var texts []string
	b, err := os.ReadFile(filepath.Join(d, "texts.json"))
	if err == nil && json.Unmarshal(b, &texts) == nil {
		for _, s := range texts {
			f.Add(s)
		}
	}
	for _, s := range []string{"", "&#x;&#99999999999;&amp", "<|endoftext|><|ſtartoftext|>", "\xff\xfe\x80",
		"'S'T'RE'VE'M'LL'D", "ΣΑΣ İ", "\x1b[", "Ã", "a\u0301\u0301", "\r\n\u0085\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		row, _ := tk.Tokenize(s, DefaultContextLength)
		if len(row) != DefaultContextLength {
			t.Fatalf("row length %d", len(row))
		}
		if row[0] != int32(tk.SOT()) {
			t.Fatalf("row starts with %d", row[0])
		}
		hasEOT := false
		for _, v := range row {
			if v < 0 || int(v) >= tk.VocabSize() {
				t.Fatalf("id %d out of range", v)
			}
			if v == int32(tk.EOT()) {
				hasEOT = true
			}
		}
		if !hasEOT {
			t.Fatal("no EOT in row")
		}
		ids := tk.Encode(s)
		dec := tk.Decode(ids)
		if !utf8.ValidString(dec) {
			t.Fatalf("Decode gave invalid UTF-8 %q", dec)
		}
		// Without special-token text, decoding gives the cleaned pieces
		// separated by spaces (each piece is followed by one).
		c := Clean(s)
		if !strings.Contains(strings.ToLower(c), "<|") {
			want := strings.Join(Pieces(c), " ")
			if want != "" {
				want += " "
			}
			if dec != want {
				t.Fatalf("Decode(Encode(%q)) = %q, want %q", s, dec, want)
			}
		}
	})
}

func TestBPELongMatchesShort(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"ab", "aeinrst", "abcdefghijklmnopqrstuvwxyz", "thequickbrownfox", "éa"}
	words := []string{"photo", "cat", "extraordinarily", "the", "ing", "tion", "aaaa", "counter"}
	for k := 0; k < 120; k++ {
		var sb strings.Builder
		n := 2 + rng.IntN(300)
		if k%2 == 0 {
			al := []rune(alphabets[rng.IntN(len(alphabets))])
			for sb.Len() < n {
				sb.WriteRune(al[rng.IntN(len(al))])
			}
		} else {
			for sb.Len() < n {
				sb.WriteString(words[rng.IntN(len(words))])
			}
		}
		p := sb.String()
		word := make([]int32, len(p))
		for i := 0; i < len(p); i++ {
			word[i] = tk.byteID[p[i]]
		}
		word[len(word)-1] = tk.byteEnd[p[len(p)-1]]
		short := tk.bpeShort(append([]int32(nil), word...))
		long := tk.bpeLong(append([]int32(nil), word...))
		if !reflect.DeepEqual(short, long) {
			t.Fatalf("piece %q: quadratic %v, heap %v", p, short, long)
		}
	}
}

func TestLongInputIsFast(t *testing.T) {
	tk := loaders(t)["openai-gz"]
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, 200_000)
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	start := time.Now()
	ids := tk.Encode(string(b))
	if len(ids) == 0 {
		t.Fatal("no ids")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("200 kB single-word input took %v", d)
	}
}
